package lifecycle_test

import (
	"strings"
	"testing"
	"time"

	"ociwf.dev/policy/lifecycle"
)

// wf and other are two versions' manifest digests.
var (
	wf    = "sha256:" + strings.Repeat("a", 64)
	other = "sha256:" + strings.Repeat("b", 64)
)

// t0 is when the test chains start.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// roles is the policy the tests evaluate under: alice is the workflow
// signer (the default submitter, deprecator and archiver), bob, carol and
// dave approve (2 of them), rm and carol publish, rm retires, and two of
// sec1..sec3 agree to an emergency retirement.
func roles() lifecycle.Roles {
	return lifecycle.Roles{
		Approve:   lifecycle.Quorum{Signers: []string{"bob", "carol", "dave"}, Threshold: 2},
		Publish:   []string{"rm", "carol"},
		Retire:    []string{"rm"},
		Emergency: lifecycle.Quorum{Signers: []string{"sec1", "sec2", "sec3"}, Threshold: 2},
	}
}

// open is a policy that requires no approvals and has no emergency set:
// alice may do everything.
func open() lifecycle.Roles { return lifecycle.Roles{} }

// chain builds events and approvals with real IDs.
type chain struct {
	t         *testing.T
	events    []lifecycle.Signed[lifecycle.Event]
	approvals []lifecycle.Signed[lifecycle.Approval]
	head      *lifecycle.Signed[lifecycle.Event]
}

func newChain(t *testing.T) *chain { return &chain{t: t} }

// event makes an event entering state after prev (nil: the first link),
// signed by signers, without adding it.
func (c *chain) event(prev *lifecycle.Signed[lifecycle.Event], state lifecycle.State, signers ...string) lifecycle.Signed[lifecycle.Event] {
	c.t.Helper()
	ev := lifecycle.Event{Workflow: wf, State: state, Sequence: 1, Time: t0, Actor: strings.Join(signers, "+")}
	if prev != nil {
		ev.Previous, ev.Sequence = prev.ID, prev.Value.Sequence+1
		ev.Time = prev.Value.Time.Add(time.Minute)
	}
	switch state {
	case lifecycle.Deprecated, lifecycle.Retired, lifecycle.Archived, lifecycle.Quarantined:
		ev.Reason = "test: " + string(state)
	}
	return c.sign(ev, signers...)
}

// sign returns ev with its ID, signed by signers.
func (c *chain) sign(ev lifecycle.Event, signers ...string) lifecycle.Signed[lifecycle.Event] {
	c.t.Helper()
	id, err := ev.ID()
	if err != nil {
		c.t.Fatal(err)
	}
	return lifecycle.Signed[lifecycle.Event]{Value: ev, ID: id, Signers: signers}
}

// next adds an event after the newest added one and returns it.
func (c *chain) next(state lifecycle.State, signers ...string) lifecycle.Signed[lifecycle.Event] {
	c.t.Helper()
	e := c.event(c.head, state, signers...)
	c.add(e)
	return e
}

// add adds events as they are, the newest becoming the head.
func (c *chain) add(es ...lifecycle.Signed[lifecycle.Event]) {
	for _, e := range es {
		c.events = append(c.events, e)
		c.head = &e
	}
}

// decide adds a decision on the event request, signed by signers.
func (c *chain) decide(request lifecycle.Signed[lifecycle.Event], d lifecycle.Decision, signers ...string) lifecycle.Signed[lifecycle.Approval] {
	c.t.Helper()
	a := c.approval(lifecycle.Approval{Workflow: wf, Request: request.ID, Decision: d, Time: request.Value.Time.Add(30 * time.Second), Actor: strings.Join(signers, "+")}, signers...)
	c.approvals = append(c.approvals, a)
	return a
}

func (c *chain) approval(a lifecycle.Approval, signers ...string) lifecycle.Signed[lifecycle.Approval] {
	c.t.Helper()
	id, err := a.ID()
	if err != nil {
		c.t.Fatal(err)
	}
	return lifecycle.Signed[lifecycle.Approval]{Value: a, ID: id, Signers: signers}
}

// input is the chain as a verifier hands it to Evaluate: a signed
// version whose workflow signer is alice.
func (c *chain) input(r lifecycle.Roles) lifecycle.Input {
	return lifecycle.Input{Workflow: wf, Events: c.events, Approvals: c.approvals, Roles: r, Signers: []string{"alice"}, Signed: true}
}

// evaluate evaluates the chain under r and fails the test on an error.
func (c *chain) evaluate(r lifecycle.Roles) *lifecycle.Status {
	c.t.Helper()
	st, err := lifecycle.Evaluate(c.input(r))
	if err != nil {
		c.t.Fatalf("Evaluate: %v", err)
	}
	return st
}

// ignoredIDs returns the IDs of st's ignored facts.
func ignoredIDs(st *lifecycle.Status) []string {
	var out []string
	for _, ig := range st.Ignored {
		out = append(out, ig.ID)
	}
	return out
}

func ignoredFor(st *lifecycle.Status, id string) *lifecycle.Ignored {
	for i := range st.Ignored {
		if st.Ignored[i].ID == id {
			return &st.Ignored[i]
		}
	}
	return nil
}
