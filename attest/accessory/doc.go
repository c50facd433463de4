// Package accessory makes, stores and finds a workflow artifact's cosign
// accessories: it signs artifacts and attaches in-toto attestations to them
// in cosign's own formats, so stock cosign verifies what ociwf
// writes and ociwf verifies what stock cosign writes.
//
// Signing keys load as cosign's sign command loads them (key files, KMS
// URIs, keyless Fulcio certificates) in package ociwf.dev/attest/keys,
// which hands back a Signer; verification keys load here (LoadVerifier:
// PEM files, and KMS, k8s:// and gitlab:// references through linked
// providers or sigstore KMS plugins), without cosign's command-line
// packages. Signatures are cosign simple-signing payloads and
// attestations DSSE envelopes of in-toto statements, stored either under
// cosign's tag scheme (sha256-<hex>.sig and .att, what cosign v2 reads by
// default) or as OCI 1.1 referrers of the artifact. Everything signs the
// manifest digest, never a tag.
//
// The package makes and checks: keys and Signers (keys.go, signer.go),
// signatures (sign.go), in-toto statements and their DSSE envelopes
// (attest.go), the verification of what was found (find.go) and the
// signing subject (subject.go). Storing and finding them in either scheme,
// with bounded reads and malformed entries skipped, is package
// attest/internal/store's; a Registry (registry.go), the signature and
// attestation store, joins the two for the repositories a Client (such as
// a *target.Opener) reaches. Checking them against a trust policy is
// package attest/verify's.
package accessory
