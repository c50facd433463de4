// Package attest will hold signing, provenance, SBOM attestations and chain
// verification for published workflows, in cosign's and in-toto's formats.
// It is empty until that work lands; see the README's roadmap.
package attest
