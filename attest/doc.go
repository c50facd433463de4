// Package attest signs workflow artifacts and attaches in-toto attestations
// to them in cosign's own formats, so stock cosign verifies what ociwf
// writes and ociwf verifies what stock cosign writes.
//
// Keys load through cosign's signer loading (key files, KMS URIs, keyless
// Fulcio certificates); signatures are cosign simple-signing payloads and
// attestations DSSE envelopes of in-toto statements, stored either under
// cosign's tag scheme (sha256-<hex>.sig and .att, what cosign v2 reads by
// default) or as OCI 1.1 referrers of the artifact. Everything signs the
// manifest digest, never a tag.
//
// A Registry stores and finds signatures and attestations for the
// repositories a target.Opener reaches; a Signer holds the signing key.
package attest
