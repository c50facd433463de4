// Package policy is the home of ociwf's policies, each in a subpackage
// named for it: immutability (which tags are immutable or append-only),
// trust (who must sign and attest what, including the lifecycle rules a
// trust scope applies to a version's state), audit (the hash-chained audit
// log) and registryext, the registry extension served by
// `ociwf registry serve`. No package records lifecycle states yet: the
// verifier asks a verify.Lifecycle the program supplies, and skips the
// lifecycle check without one.
package policy
