package lifecycle

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"ociwf.dev/ociwf/errdef"
)

// Quorum is a set of signers of which Threshold must agree.
type Quorum struct {
	Signers   []string `json:"signers,omitempty"`
	Threshold int      `json:"threshold,omitempty"`
}

// Roles say which signers (by trust policy name) may record which
// lifecycle facts. Empty lists mean the scope's workflow signers; a zero
// Approve requires no approvals, and a zero Emergency offers no emergency
// path. Quarantine adds to the workflow signers (who may always
// quarantine) rather than replacing them, so an integrity monitor's
// lifecycle signer can be named alone.
type Roles struct {
	Submit    []string `json:"submit,omitempty"`
	Approve   Quorum   `json:"approve,omitzero"`
	Publish   []string `json:"publish,omitempty"`
	Deprecate []string `json:"deprecate,omitempty"`
	Retire    []string `json:"retire,omitempty"`
	Archive   []string `json:"archive,omitempty"`
	Emergency Quorum   `json:"emergency,omitzero"`
	// Quarantine and Release say who may quarantine a published or
	// deprecated version and who may release it.
	Quarantine []string `json:"quarantine,omitempty"`
	Release    []string `json:"release,omitempty"`
}

// Allowed returns the signers allowed role, defaults given: publishers
// are the signers given when a role lists none.
func (r Roles) Allowed(role Role, defaults []string) []string {
	var l []string
	switch role {
	case RoleSubmit:
		l = r.Submit
	case RoleApprove:
		return r.Approve.Signers
	case RolePublish:
		l = r.Publish
	case RoleDeprecate:
		l = r.Deprecate
	case RoleRetire:
		l = r.Retire
	case RoleArchive:
		l = r.Archive
	case RoleEmergency:
		return r.Emergency.Signers
	case RoleQuarantine:
		return union(defaults, r.Quarantine)
	case RoleRelease:
		l = r.Release
	}
	if len(l) == 0 {
		return defaults
	}
	return l
}

// Signed is a predicate whose signatures a verifier checked, with the
// names of the trusted signers whose signatures on it verified.
type Signed[T any] struct {
	Value T
	ID    string
	// Signers are distinct trust policy signer names.
	Signers []string
}

// Input is what Evaluate needs about one version.
type Input struct {
	// Workflow is the version's manifest digest.
	Workflow string
	// Events and Approvals are the verified statements about Workflow.
	Events    []Signed[Event]
	Approvals []Signed[Approval]
	Roles     Roles
	// Signers are the scope's workflow signers, the default for roles
	// that list none.
	Signers []string
	// Signed is true when the version carries a valid signature by a
	// trusted workflow signer. Without events, a signed version is
	// published when the policy requires no approvals (the signature is
	// the publication, as before lifecycle events existed); otherwise it
	// is a draft.
	Signed bool
	// Unverified are well-formed events about Workflow that were served
	// but that no trusted signer signed. They never count. Under Roles
	// that name no lifecycle roles (the workflow signers record every
	// transition, as with a bare --key), the counted chain may start
	// after one of them: a counted event that names it as its
	// predecessor vouches for the history it links to, which this
	// policy cannot evaluate (Status.After).
	Unverified []Signed[Event]
}

// namesNobody reports whether r names no lifecycle roles. (Not an IsZero
// method: types that embed Roles would take it, and encoders would drop
// them as zero.)
func (r Roles) namesNobody() bool {
	return len(r.Submit) == 0 && len(r.Approve.Signers) == 0 && r.Approve.Threshold == 0 &&
		len(r.Publish) == 0 && len(r.Deprecate) == 0 && len(r.Retire) == 0 && len(r.Archive) == 0 &&
		len(r.Emergency.Signers) == 0 && r.Emergency.Threshold == 0 && len(r.Quarantine) == 0 && len(r.Release) == 0
}

// Link is a counted event in the chain.
type Link struct {
	ID      string   `json:"id"`
	Event   Event    `json:"event"`
	Signers []string `json:"signers"`
	// Approvals are the counted emergency approvals of an emergency
	// retirement.
	Approvals []Vote `json:"approvals,omitempty"`
}

// Vote is a counted approval or rejection.
type Vote struct {
	ID       string   `json:"id"`
	Approval Approval `json:"approval"`
	Signers  []string `json:"signers"`
}

// Round is the review round of the newest submission.
type Round struct {
	// Request is the submission's event ID.
	Request string `json:"request"`
	// Author are the submission's signers.
	Author     []string `json:"author"`
	Approvals  []Vote   `json:"approvals,omitempty"`
	Rejections []Vote   `json:"rejections,omitempty"`
	// Needed is the policy's threshold.
	Needed int `json:"needed"`
}

// Approvers returns the distinct signers of the round's approvals,
// sorted.
func (r *Round) Approvers() []string { return voters(r.Approvals) }

// Pending is an emergency retirement that has not (yet) the approvals it
// needs; it does not count.
type Pending struct {
	ID        string   `json:"id"`
	Event     Event    `json:"event"`
	Signers   []string `json:"signers"`
	Approvals []Vote   `json:"approvals,omitempty"`
	// Agree are the emergency approvers who signed or approved it so
	// far; it counts once they are Needed.
	Agree  []string `json:"agree"`
	Needed int      `json:"needed"`
}

// Ignored is a verified statement that does not count: signed by a
// signer not allowed what it records, about another version, or for a
// request that is not open.
type Ignored struct {
	// Kind is "event" or "approval".
	Kind    string   `json:"kind"`
	ID      string   `json:"id"`
	State   State    `json:"state,omitempty"`
	Signers []string `json:"signers"`
	Reason  string   `json:"reason"`
}

// Status is a version's evaluated lifecycle.
type Status struct {
	Workflow string `json:"workflow"`
	State    State  `json:"state"`
	// Implicit is true for a signed version without events, published
	// by its signature alone.
	Implicit bool `json:"implicit,omitempty"`
	// Rejected is true for a draft whose review was rejected.
	Rejected bool `json:"rejected,omitempty"`
	// Emergency is true when a counted emergency event is in the chain.
	Emergency bool      `json:"emergency,omitempty"`
	Chain     []Link    `json:"chain"`
	Round     *Round    `json:"round,omitempty"`
	Pending   []Pending `json:"pending,omitempty"`
	Ignored   []Ignored `json:"ignored,omitempty"`
	// After is set when the counted chain starts after a served event
	// no trusted signer signed (see Input.Unverified): the history up to
	// it is its signers' account, vouched for by the first counted event
	// but not evaluated.
	After *Unevaluated `json:"after,omitempty"`
}

// Unevaluated is the served, unverified event a counted chain starts
// after.
type Unevaluated struct {
	ID       string `json:"id"`
	State    State  `json:"state"`
	Sequence int    `json:"sequence"`
}

// Last returns the newest counted event, or nil.
func (s *Status) Last() *Link {
	if len(s.Chain) == 0 {
		return nil
	}
	return &s.Chain[len(s.Chain)-1]
}

// Head is the position of the newest counted event, what a StateStore
// keeps; the zero Head is an empty chain.
func (s *Status) Head() Head {
	l := s.Last()
	if l == nil {
		return Head{}
	}
	return Head{Sequence: l.Event.Sequence, ID: l.ID, State: l.Event.State}
}

// Reason returns the reason and replacement recorded by the newest
// event.
func (s *Status) Reason() (reason, replacement string) {
	if l := s.Last(); l != nil {
		return l.Event.Reason, l.Event.Replacement
	}
	return "", ""
}

// ChainError is an event chain that fails closed: a fork, a broken link,
// events out of order, a transition outside the state machine, or a
// publication without the approvals the policy requires. It matches
// errdef.ErrVerification.
type ChainError struct {
	Workflow string
	// Problem is "fork", "broken link", "order", "transition" or
	// "unapproved".
	Problem string
	Detail  string
	// IDs are the events involved.
	IDs []string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("lifecycle chain of %s: %s: %s", e.Workflow, e.Problem, e.Detail)
}

// Is makes a ChainError match errdef.ErrVerification.
func (e *ChainError) Is(target error) bool { return target == errdef.ErrVerification }

// Evaluate computes a version's state from its verified events and
// approvals under the policy's roles. Only events signed by a signer
// allowed their transition count (the others are listed in
// Status.Ignored); the counted events must form one unbroken, ordered
// chain of allowed transitions without a fork, or Evaluate returns a
// *ChainError. A publication needs the approvals the policy requires,
// from approvers other than the author and the publisher.
func Evaluate(in Input) (*Status, error) {
	st := &Status{Workflow: in.Workflow, Chain: []Link{}}
	fail := func(problem string, ids []string, format string, args ...any) (*Status, error) {
		return st, &ChainError{Workflow: in.Workflow, Problem: problem, Detail: fmt.Sprintf(format, args...), IDs: ids}
	}
	ignore := func(kind, id string, state State, signers []string, format string, args ...any) {
		st.Ignored = append(st.Ignored, Ignored{Kind: kind, ID: id, State: state, Signers: signers, Reason: fmt.Sprintf(format, args...)})
	}

	approvals := mergeSigned(in.Approvals)
	byRequest := map[string][]Signed[Approval]{}
	for _, a := range approvals {
		if a.Value.Workflow != in.Workflow {
			ignore("approval", a.ID, "", a.Signers, "names workflow %s, not %s", a.Value.Workflow, in.Workflow)
			continue
		}
		byRequest[a.Value.Request] = append(byRequest[a.Value.Request], a)
	}
	used := map[string]bool{} // requests whose approvals were looked at

	// Count events.
	var counted []Signed[Event]
	for _, e := range mergeSigned(in.Events) {
		ev := e.Value
		if ev.Workflow != in.Workflow {
			ignore("event", e.ID, ev.State, e.Signers, "names workflow %s, not %s", ev.Workflow, in.Workflow)
			continue
		}
		if ev.Emergency != nil {
			q := in.Roles.Emergency
			if q.Threshold == 0 {
				ignore("event", e.ID, ev.State, e.Signers, "emergency retirement, but the trust policy names no emergency approvers")
				continue
			}
			by := intersect(e.Signers, q.Signers)
			if len(by) == 0 {
				ignore("event", e.ID, ev.State, e.Signers, "emergency retirement not signed by the emergency approver set (%s)", strings.Join(q.Signers, ", "))
				continue
			}
			used[e.ID] = true
			votes, _ := tally(byRequest[e.ID], q.Signers, nil, func(v Signed[Approval], why string) {
				ignore("approval", v.ID, "", v.Signers, "%s", why)
			})
			agree := union(by, voters(votes))
			if len(agree) < q.Threshold {
				st.Pending = append(st.Pending, Pending{ID: e.ID, Event: ev, Signers: e.Signers, Approvals: votes, Agree: agree, Needed: q.Threshold})
				continue
			}
			counted = append(counted, e)
			continue
		}
		allowed := in.Roles.Allowed(RoleFor(ev.State), in.Signers)
		if ev.State == Published || ev.State == Deprecated {
			// It may be a release; the chain decides below.
			allowed = union(allowed, in.Roles.Allowed(RoleRelease, in.Signers))
		}
		if len(intersect(e.Signers, allowed)) == 0 {
			ignore("event", e.ID, ev.State, e.Signers, "signed by %s, who may not record %s (allowed: %s)",
				strings.Join(e.Signers, ", "), ev.State, orNone(allowed))
			continue
		}
		counted = append(counted, e)
	}

	// Chain them.
	children := map[string][]Signed[Event]{}
	for _, e := range counted {
		children[e.Value.Previous] = append(children[e.Value.Previous], e)
	}
	reached := map[string]bool{}
	dropped := map[string]bool{} // counted, but not allowed where they stand
	var beforeQuarantine State
	state, prev := Draft, (*Signed[Event])(nil)
	implicit := in.Signed && in.Roles.Approve.Threshold == 0
	// Under roles that name nobody, the chain may start after a served,
	// unverified event that a counted event links to.
	var after *Signed[Event]
	if len(children[""]) == 0 && in.Roles.namesNobody() {
		isCounted := map[string]bool{}
		for _, e := range counted {
			isCounted[e.ID] = true
		}
		var entries []Signed[Event]
		for _, u := range mergeSigned(in.Unverified) {
			if u.Value.Workflow != in.Workflow || isCounted[u.ID] {
				continue
			}
			for _, e := range children[u.ID] {
				entries = append(entries, e)
				if after == nil {
					after = &u
				}
			}
		}
		if len(entries) > 1 {
			ids := idsOf(entries)
			return fail("fork", ids, "%d counted events start the chain after unverified events: %s", len(entries), strings.Join(ids, ", "))
		}
	}
	var round *Round
	for {
		key := ""
		if prev != nil {
			key = prev.ID
		} else if after != nil {
			key = after.ID
		}
		next := in.roleAt(children[key], state, func(e Signed[Event], why string) {
			dropped[e.ID] = true
			ignore("event", e.ID, e.Value.State, e.Signers, "%s", why)
		})
		if len(next) == 0 {
			break
		}
		if len(next) > 1 {
			ids := idsOf(next)
			what := "the first link"
			if prev != nil {
				what = "event " + prev.ID
			}
			return fail("fork", ids, "%d counted events claim %s as their predecessor: %s", len(next), what, strings.Join(ids, ", "))
		}
		e := next[0]
		ev := e.Value
		before := prev
		if before == nil {
			before = after
		}
		want := 1
		if before != nil {
			want = before.Value.Sequence + 1
		}
		if ev.Sequence != want {
			return fail("order", []string{e.ID}, "event %s has sequence %d, want %d", e.ID, ev.Sequence, want)
		}
		if before != nil && ev.Time.Before(before.Value.Time) {
			return fail("order", []string{before.ID, e.ID}, "event %s (%s) is dated before its predecessor (%s)", e.ID, ev.Time.UTC().Format("2006-01-02T15:04:05Z"), before.Value.Time.UTC().Format("2006-01-02T15:04:05Z"))
		}
		from := state
		if round != nil {
			from = roundState(round)
		}
		if prev == nil && implicit && !CanTransition(from, ev.State) {
			// A version published by its signature alone: the first
			// event may follow from the publication.
			from = Published
		}
		entering := prev == nil && after != nil
		if entering {
			// What led here is the unverified signers' account, which
			// the first counted event vouches for by its link.
			st.After = &Unevaluated{ID: after.ID, State: after.Value.State, Sequence: after.Value.Sequence}
			from = after.Value.State
		} else if !CanTransition(from, ev.State) {
			return fail("transition", []string{e.ID}, "event %s moves %s to %s, which the state machine does not allow (from %s: %s)",
				e.ID, from, ev.State, from, orNone(statesOf(Next(from))))
		}
		if from == Quarantined && ev.State != beforeQuarantine {
			return fail("transition", []string{e.ID}, "event %s releases a quarantined version to %s, but it was %s before the quarantine", e.ID, ev.State, beforeQuarantine)
		}
		if ev.State == Quarantined {
			beforeQuarantine = from
		}
		if ev.State == Published && from != Quarantined && in.Roles.Approve.Threshold > 0 {
			if round == nil {
				return fail("unapproved", []string{e.ID}, "event %s publishes without a review, but the trust policy requires %d approvals", e.ID, in.Roles.Approve.Threshold)
			}
			// A rejected round sent the version back to draft: only a new
			// submission's approvals can publish it.
			if len(round.Rejections) > 0 {
				return fail("unapproved", []string{e.ID, round.Request}, "event %s publishes a version whose review %s was rejected by %s; submit it again for a new review",
					e.ID, round.Request, strings.Join(voters(round.Rejections), ", "))
			}
			// The publisher's own approvals do not count.
			votes, _ := tally(byRequest[round.Request], in.Roles.Approve.Signers, union(round.Author, e.Signers), nil)
			if n := len(voters(votes)); n < in.Roles.Approve.Threshold {
				return fail("unapproved", []string{e.ID, round.Request}, "event %s publishes with %d of %d required approvals from approvers other than the author and the publisher",
					e.ID, n, in.Roles.Approve.Threshold)
			}
		}
		link := Link{ID: e.ID, Event: ev, Signers: e.Signers}
		if ev.Emergency != nil {
			link.Approvals, _ = tally(byRequest[e.ID], in.Roles.Emergency.Signers, nil, nil)
			st.Emergency = true
		}
		st.Chain = append(st.Chain, link)
		reached[e.ID] = true
		if ev.State == Review {
			used[e.ID] = true
			round = &Round{Request: e.ID, Author: e.Signers, Needed: in.Roles.Approve.Threshold}
			round.Approvals, round.Rejections = tally(byRequest[e.ID], in.Roles.Approve.Signers, e.Signers, func(v Signed[Approval], why string) {
				ignore("approval", v.ID, "", v.Signers, "%s", why)
			})
		} else {
			round = nil
		}
		state = ev.State
		prev = &next[0]
	}
	for _, e := range counted {
		if !reached[e.ID] && !dropped[e.ID] {
			what := "event " + e.Value.Previous
			if e.Value.Previous == "" {
				what = "the first link"
			}
			return fail("broken link", []string{e.ID}, "counted event %s (%s, sequence %d) follows %s, which is not in the chain served", e.ID, e.Value.State, e.Value.Sequence, what)
		}
	}
	for req, as := range byRequest {
		if used[req] {
			continue
		}
		for _, a := range as {
			ignore("approval", a.ID, "", a.Signers, "decides %s, which is not a counted submission or emergency retirement of this version", req)
		}
	}

	switch {
	case len(st.Chain) == 0 && implicit:
		st.State, st.Implicit = Published, true
	case round != nil:
		st.Round = round
		st.State = roundState(round)
		st.Rejected = st.State == Draft
	default:
		st.State = state
	}
	sort.SliceStable(st.Ignored, func(i, j int) bool { return st.Ignored[i].ID < st.Ignored[j].ID })
	return st, nil
}

// roleAt keeps the events of next that their signers may record after
// state from: a release (any event after a quarantine) needs the release
// role, any other event the role of the state it enters (an event counted
// only because its signer may release stands nowhere else). The others
// are dropped.
func (in Input) roleAt(next []Signed[Event], from State, drop func(Signed[Event], string)) []Signed[Event] {
	var out []Signed[Event]
	for _, e := range next {
		var allowed []string
		var what string
		switch {
		case e.Value.Emergency != nil:
			out = append(out, e)
			continue
		case from == Quarantined:
			allowed, what = in.Roles.Allowed(RoleRelease, in.Signers), "release a quarantined version"
		default:
			allowed, what = in.Roles.Allowed(RoleFor(e.Value.State), in.Signers), "record "+string(e.Value.State)
		}
		if len(intersect(e.Signers, allowed)) == 0 {
			drop(e, fmt.Sprintf("signed by %s, who may not %s (allowed: %s)", strings.Join(e.Signers, ", "), what, orNone(allowed)))
			continue
		}
		out = append(out, e)
	}
	return out
}

// roundState is the state a review round puts its version in.
func roundState(r *Round) State {
	switch {
	case len(r.Rejections) > 0:
		return Draft
	case len(voters(r.Approvals)) >= r.Needed:
		return Approved
	}
	return Review
}

// tally counts the approvals and rejections of one request by allowed
// signers, excluding those by excluded signers (the author, the
// publisher). Each signer counts once.
func tally(as []Signed[Approval], allowed, excluded []string, ignore func(Signed[Approval], string)) (approvals, rejections []Vote) {
	for _, a := range as {
		by := intersect(a.Signers, allowed)
		if len(by) == 0 {
			if ignore != nil {
				ignore(a, fmt.Sprintf("signed by %s, who may not approve (allowed: %s)", strings.Join(a.Signers, ", "), orNone(allowed)))
			}
			continue
		}
		if own := intersect(by, excluded); len(own) > 0 {
			by = without(by, excluded)
			if len(by) == 0 {
				if ignore != nil {
					ignore(a, fmt.Sprintf("signed by %s, the author or publisher, who may not approve their own work", strings.Join(own, ", ")))
				}
				continue
			}
		}
		v := Vote{ID: a.ID, Approval: a.Value, Signers: by}
		if a.Value.Decision == Reject {
			rejections = append(rejections, v)
		} else {
			approvals = append(approvals, v)
		}
	}
	return approvals, rejections
}

// mergeSigned merges statements with the same ID (one fact stored in
// several formats, or signed by several signers) and orders them by ID.
func mergeSigned[T any](in []Signed[T]) []Signed[T] {
	by := map[string]int{}
	var out []Signed[T]
	for _, s := range in {
		if i, ok := by[s.ID]; ok {
			out[i].Signers = union(out[i].Signers, s.Signers)
			continue
		}
		by[s.ID] = len(out)
		s.Signers = union(nil, s.Signers)
		out = append(out, s)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

func voters(vs []Vote) []string {
	var out []string
	for _, v := range vs {
		out = union(out, v.Signers)
	}
	return out
}

func idsOf(es []Signed[Event]) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.ID)
	}
	return out
}

func statesOf(ss []State) []string {
	var out []string
	for _, s := range ss {
		out = append(out, string(s))
	}
	return out
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// union returns the sorted distinct names of a and b.
func union(a, b []string) []string {
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
