// Package policy is the home of ociwf's policies, each in a subpackage
// named for it: immutability (which tags are immutable or append-only),
// trust (who must sign and attest what, including who may move a version
// through its lifecycle and what each state means for it), lifecycle (the
// state machine, the signed event and approval predicates and the
// evaluation of a version's event chain), audit (the hash-chained audit
// log) and registryext, the registry extension served by
// `ociwf registry serve`.
package policy
