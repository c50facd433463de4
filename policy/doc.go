// Package policy is the home of ociwf's policies: immutability, trust,
// lifecycle and registry enforcement. Each lives in a subpackage named for
// it; registryext is the registry extension served by `ociwf registry serve`.
package policy
