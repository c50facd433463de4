// Package lifecycle is the immutability policy's lifecycle made
// verifiable: the states a workflow version goes through (draft, review,
// approved, published, deprecated, retired, archived), the transitions
// between them, the signed facts that move a version along (lifecycle
// events and approvals, in-toto predicates of ociwf's own with a JSON
// Schema each) and the evaluation of those facts into a state.
//
// Events form a hash chain per version: each names the ID (the SHA-256 of
// its canonical JSON) of the event before it and its position in the
// chain. Evaluate takes the events and approvals whose signatures a
// verifier checked, counts only those signed by a signer the policy allows
// that transition, and fails closed on a fork, a broken link or a
// transition outside the state machine. The state is computed from that
// chain alone, never from a tag or a mutable field.
//
// A registry that allows deletes can hide the newest events and so roll a
// version back to an older state. A StateStore keeps the highest chain a
// verifier has seen per version, as TUF clients keep the highest metadata
// versions they saw; CheckRollback fails when a registry serves less.
//
// The package reads and writes nothing remote: package attest/verify
// finds and checks the signed statements, and attest/govern writes them.
package lifecycle

import (
	"fmt"
	"slices"
	"strings"

	"ociwf.dev/ociwf/errdef"
)

// State is a lifecycle state of a workflow version.
type State string

// The states, in the order of the immutability policy.
const (
	// Draft: pushed, not submitted (or its review was rejected); mutable
	// tags only; cannot be executed or referenced.
	Draft State = "draft"
	// Review: a signed submission froze the digest; approvals and
	// rejections are accepted.
	Review State = "review"
	// Approved: the approvals satisfy the policy; only publication or
	// rejection follow. Computed from approvals, never an event.
	Approved State = "approved"
	// Published: the immutable version; runtimes may use it.
	Published State = "published"
	// Deprecated versions: runtimes warn (or refuse by policy); no new
	// references.
	Deprecated State = "deprecated"
	// Retired: runtimes, verify and pull refuse it; readable for audit.
	Retired State = "retired"
	// Archived: as retired; kept read-only for compliance.
	Archived State = "archived"
	// Quarantined: a published or deprecated version whose integrity
	// check failed (the integrity monitor records it); runtimes, verify
	// and pull refuse it until a release event returns it to the state
	// it was in before.
	Quarantined State = "quarantined"
)

// States lists every state in lifecycle order.
func States() []State {
	return []State{Draft, Review, Approved, Published, Deprecated, Retired, Archived, Quarantined}
}

// Valid reports whether s is one of the states.
func (s State) Valid() bool { return slices.Contains(States(), s) }

// Executable reports whether runtimes may run a version in state s
// (deprecated ones with a warning, unless the policy refuses them).
func (s State) Executable() bool { return s == Published || s == Deprecated }

// Restriction is the policy's name for what a state forbids, as the
// immutability policy spells it (cannot_be_executed, cannot_be_referenced,
// no_new_references, cannot_be_used, compliance_access_only).
func (s State) Restriction() string {
	switch s {
	case Draft, Review, Approved:
		return "cannot_be_executed"
	case Deprecated:
		return "no_new_references"
	case Retired, Quarantined:
		return "cannot_be_used"
	case Archived:
		return "compliance_access_only"
	}
	return ""
}

// Role is what a signer may do to a version's lifecycle.
type Role string

// Roles, as a trust policy's lifecycle section names them.
const (
	RoleSubmit    Role = "submit"
	RoleApprove   Role = "approve"
	RolePublish   Role = "publish"
	RoleDeprecate Role = "deprecate"
	RoleRetire    Role = "retire"
	RoleArchive   Role = "archive"
	RoleEmergency Role = "emergency"
	// RoleQuarantine may quarantine a published or deprecated version.
	RoleQuarantine Role = "quarantine"
	// RoleRelease may release a quarantined version back to the state it
	// was in before.
	RoleRelease Role = "release"
)

// RoleFor returns the role whose signers may record an event entering
// state to.
func RoleFor(to State) Role {
	switch to {
	case Review:
		return RoleSubmit
	case Published:
		return RolePublish
	case Deprecated:
		return RoleDeprecate
	case Retired:
		return RoleRetire
	case Archived:
		return RoleArchive
	case Quarantined:
		return RoleQuarantine
	}
	return ""
}

// next is the state machine: for each state, the states an event may
// enter from it. Approved is reached by approvals, not by an event, and a
// review whose round was rejected is a draft again.
func next(from State) []State {
	switch from {
	case Draft:
		return []State{Review, Published}
	case Review, Approved:
		return []State{Published}
	case Published:
		return []State{Deprecated, Retired, Quarantined}
	case Deprecated:
		return []State{Retired, Quarantined}
	case Quarantined:
		// A release returns to the state before the quarantine, which
		// Evaluate checks.
		return []State{Published, Deprecated}
	case Retired:
		return []State{Archived}
	}
	return nil
}

// Next returns the states an event may enter from state from: the
// transitions the immutability policy allows. From draft, publication
// needs a policy that requires no approvals; from review it needs the
// approvals the policy requires (the state is then approved). From
// quarantined, only a release back to the state before the quarantine
// is allowed.
func Next(from State) []State { return next(from) }

// CanTransition reports whether an event may move a version from state
// from to state to.
func CanTransition(from, to State) bool { return slices.Contains(next(from), to) }

// TransitionError is a transition the state machine or the trust policy
// refuses. It matches errdef.ErrLifecycle.
type TransitionError struct {
	Workflow string
	From, To State
	// Allowed are the states reachable from From.
	Allowed []State
	// Rule says what refused it: "the lifecycle state machine does not
	// allow it", a trust policy rule ("trust policy \"team\": publication
	// needs 2 approvals ..."), or why no review or emergency is open.
	Rule string
}

func (e *TransitionError) Error() string {
	allowed := "none: the version is final"
	if len(e.Allowed) > 0 {
		var s []string
		for _, a := range e.Allowed {
			s = append(s, string(a))
		}
		allowed = strings.Join(s, ", ")
	}
	return fmt.Sprintf("%s: %s -> %s refused: %s; allowed from %s: %s", e.Workflow, e.From, e.To, e.Rule, e.From, allowed)
}

// Is makes a TransitionError match errdef.ErrLifecycle.
func (e *TransitionError) Is(target error) bool { return target == errdef.ErrLifecycle }

// StateError is a use of a version its state forbids: executing a draft
// or a retired version, referencing a deprecated one. It matches
// errdef.ErrLifecycle.
type StateError struct {
	// Reference names the version.
	Reference string
	State     State
	// Restriction is State.Restriction(), or the use refused.
	Restriction string
	// Reason is the reason recorded with the state, if any.
	Reason string
	// Replacement is the replacement recorded with a deprecation or
	// retirement, if any.
	Replacement string
	// Emergency is true when the state was entered by an emergency event.
	Emergency bool
}

func (e *StateError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s is %s (%s)", e.Reference, e.State, e.Restriction)
	if e.Emergency {
		b.WriteString(" by emergency")
	}
	if e.Reason != "" {
		fmt.Fprintf(&b, ": %s", e.Reason)
	}
	if e.Replacement != "" {
		fmt.Fprintf(&b, "; use %s instead", e.Replacement)
	}
	return b.String()
}

// Is makes a StateError match errdef.ErrLifecycle.
func (e *StateError) Is(target error) bool { return target == errdef.ErrLifecycle }
