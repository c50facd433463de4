// Package attest is the root of ociwf's supply-chain packages; it holds no
// code of its own, so that every package below it imports only siblings
// and the packages beneath them:
//
//   - attest/accessory makes, stores and finds signatures and attestations
//     (keys, signers, cosign's formats, the tag scheme and OCI referrers);
//   - attest/provenance builds and reads SLSA v1 provenance;
//   - attest/verify checks a workflow from tag to plan under a trust policy;
//   - attest/publish runs the publication ceremony.
package attest
