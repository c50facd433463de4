package lifecycle_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// Without events, a signed version is published by its signature when the
// policy requires no approvals, and a draft otherwise; an unsigned one is
// always a draft.
func TestEvaluateWithoutEvents(t *testing.T) {
	for _, tc := range []struct {
		name     string
		signed   bool
		roles    lifecycle.Roles
		want     lifecycle.State
		implicit bool
	}{
		{"signed, no approvals required", true, open(), lifecycle.Published, true},
		{"signed, approvals required", true, roles(), lifecycle.Draft, false},
		{"unsigned, no approvals required", false, open(), lifecycle.Draft, false},
		{"unsigned, approvals required", false, roles(), lifecycle.Draft, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := lifecycle.Evaluate(lifecycle.Input{Workflow: wf, Roles: tc.roles, Signers: []string{"alice"}, Signed: tc.signed})
			if err != nil {
				t.Fatal(err)
			}
			if st.State != tc.want || st.Implicit != tc.implicit || len(st.Chain) != 0 || st.Last() != nil || st.Head() != (lifecycle.Head{}) {
				t.Fatalf("status %+v, want %s (implicit %v)", st, tc.want, tc.implicit)
			}
			if st.Chain == nil {
				t.Fatal("Chain is nil: it must encode as [] in JSON")
			}
		})
	}
}

// The first link may be a submission or, without an approval policy, a
// publication.
func TestEvaluateFirstLink(t *testing.T) {
	c := newChain(t)
	rev := c.next(lifecycle.Review, "alice")
	st := c.evaluate(roles())
	if st.State != lifecycle.Review || st.Round == nil || st.Round.Request != rev.ID || st.Round.Needed != 2 ||
		!slices.Equal(st.Round.Author, []string{"alice"}) || len(st.Round.Approvals) != 0 || st.Rejected {
		t.Fatalf("after a submission: %+v (round %+v)", st, st.Round)
	}
	if h := st.Head(); h.Sequence != 1 || h.ID != rev.ID || h.State != lifecycle.Review {
		t.Fatalf("head %+v", h)
	}

	c = newChain(t)
	pub := c.next(lifecycle.Published, "alice")
	st = c.evaluate(open())
	if st.State != lifecycle.Published || st.Implicit || len(st.Chain) != 1 || st.Last().ID != pub.ID || st.Round != nil {
		t.Fatalf("after a publication: %+v", st)
	}
	// Unsigned, the publication event alone publishes it.
	in := c.input(open())
	in.Signed = false
	if st, err := lifecycle.Evaluate(in); err != nil || st.State != lifecycle.Published {
		t.Fatalf("unsigned, published by its event: %v %+v", err, st)
	}
}

// The whole lifecycle: submitted, approved by two reviewers, published by
// the release manager, deprecated by the author, retired by the release
// manager, archived by the author.
func TestEvaluateFullChain(t *testing.T) {
	c := newChain(t)
	rev := c.next(lifecycle.Review, "alice")
	steps := []struct {
		do   func()
		want lifecycle.State
	}{
		{func() {}, lifecycle.Review},
		{func() { c.decide(rev, lifecycle.Approve, "bob") }, lifecycle.Review},
		{func() { c.decide(rev, lifecycle.Approve, "carol") }, lifecycle.Approved},
		{func() { c.next(lifecycle.Published, "rm") }, lifecycle.Published},
		{func() { c.next(lifecycle.Deprecated, "alice") }, lifecycle.Deprecated},
		{func() { c.next(lifecycle.Retired, "rm") }, lifecycle.Retired},
		{func() { c.next(lifecycle.Archived, "alice") }, lifecycle.Archived},
	}
	for i, s := range steps {
		s.do()
		st := c.evaluate(roles())
		if st.State != s.want {
			t.Fatalf("step %d: state %s, want %s; ignored %+v", i, st.State, s.want, st.Ignored)
		}
		if len(st.Ignored) != 0 {
			t.Fatalf("step %d: ignored %+v", i, st.Ignored)
		}
		if n := len(c.events); len(st.Chain) != n || st.Head().Sequence != n || st.Head().ID != c.head.ID {
			t.Fatalf("step %d: chain of %d, head %+v; want %d events", i, len(st.Chain), st.Head(), n)
		}
	}
	st := c.evaluate(roles())
	if st.Round != nil || st.Rejected || st.Emergency {
		t.Fatalf("final status %+v", st)
	}
	if r, _ := st.Reason(); r != "test: archived" {
		t.Fatalf("reason %q", r)
	}
	for i, l := range st.Chain {
		if l.Event.Sequence != i+1 || (i > 0 && l.Event.Previous != st.Chain[i-1].ID) {
			t.Fatalf("link %d: %+v", i, l)
		}
	}
	if !st.State.Valid() || st.State.Executable() || st.State.Restriction() != "compliance_access_only" {
		t.Fatalf("archived: valid %v executable %v restriction %q", st.State.Valid(), st.State.Executable(), st.State.Restriction())
	}
}

// Chains that fail closed: a fork, a broken link, events out of order, a
// transition outside the state machine, a publication without the
// approvals required.
func TestEvaluateChainErrors(t *testing.T) {
	type tc struct {
		name    string
		roles   lifecycle.Roles
		build   func(c *chain)
		problem string
		detail  string
	}
	cases := []tc{
		{name: "fork after the first link", roles: open(), problem: "fork", detail: "2 counted events claim event",
			build: func(c *chain) {
				pub := c.next(lifecycle.Published, "alice")
				c.add(c.event(&pub, lifecycle.Deprecated, "alice"), c.event(&pub, lifecycle.Retired, "alice"))
			}},
		{name: "two first links", roles: open(), problem: "fork", detail: "the first link",
			build: func(c *chain) {
				c.add(c.event(nil, lifecycle.Published, "alice"), c.event(nil, lifecycle.Review, "alice"))
			}},
		{name: "two first links of the same state by other signers", roles: open(), problem: "fork", detail: "the first link",
			build: func(c *chain) {
				a := c.event(nil, lifecycle.Published, "alice")
				b := a
				b.Value.Actor = "someone else"
				c.add(a, c.sign(b.Value, "alice"))
			}},
		{name: "missing middle event", roles: open(), problem: "broken link", detail: "not in the chain served",
			build: func(c *chain) {
				pub := c.event(nil, lifecycle.Published, "alice")
				dep := c.event(&pub, lifecycle.Deprecated, "alice")
				c.add(pub, c.event(&dep, lifecycle.Retired, "alice"))
			}},
		{name: "missing first event", roles: open(), problem: "broken link", detail: "not in the chain served",
			build: func(c *chain) {
				pub := c.event(nil, lifecycle.Published, "alice")
				c.add(c.event(&pub, lifecycle.Deprecated, "alice"))
			}},
		{name: "sequence gap", roles: open(), problem: "order", detail: "sequence 3, want 2",
			build: func(c *chain) {
				pub := c.next(lifecycle.Published, "alice")
				e := c.event(&pub, lifecycle.Deprecated, "alice")
				e.Value.Sequence = 3
				c.add(c.sign(e.Value, "alice"))
			}},
		{name: "first link with sequence 2", roles: open(), problem: "order", detail: "sequence 2, want 1",
			build: func(c *chain) {
				e := c.event(nil, lifecycle.Published, "alice")
				e.Value.Sequence = 2
				c.add(c.sign(e.Value, "alice"))
			}},
		{name: "time going backwards", roles: open(), problem: "order", detail: "dated before its predecessor",
			build: func(c *chain) {
				pub := c.next(lifecycle.Published, "alice")
				e := c.event(&pub, lifecycle.Deprecated, "alice")
				e.Value.Time = pub.Value.Time.Add(-time.Second)
				c.add(c.sign(e.Value, "alice"))
			}},
		{name: "archived to deprecated", roles: open(), problem: "transition", detail: "moves archived to deprecated",
			build: func(c *chain) {
				c.next(lifecycle.Published, "alice")
				c.next(lifecycle.Retired, "alice")
				c.next(lifecycle.Archived, "alice")
				c.next(lifecycle.Deprecated, "alice")
			}},
		{name: "published to review", roles: open(), problem: "transition", detail: "moves published to review",
			build: func(c *chain) {
				c.next(lifecycle.Published, "alice")
				c.next(lifecycle.Review, "alice")
			}},
		{name: "deprecated to published", roles: open(), problem: "transition", detail: "moves deprecated to published",
			build: func(c *chain) {
				c.next(lifecycle.Published, "alice")
				c.next(lifecycle.Deprecated, "alice")
				c.next(lifecycle.Published, "alice")
			}},
		{name: "review to review while the round is open", roles: roles(), problem: "transition", detail: "moves review to review",
			build: func(c *chain) {
				c.next(lifecycle.Review, "alice")
				c.next(lifecycle.Review, "alice")
			}},
		{name: "retirement of a draft", roles: roles(), problem: "transition", detail: "moves draft to retired",
			build: func(c *chain) { c.next(lifecycle.Retired, "rm") }},
		{name: "publication without review under an approval policy", roles: roles(), problem: "unapproved", detail: "without a review",
			build: func(c *chain) { c.next(lifecycle.Published, "rm") }},
		{name: "publication with one of two approvals", roles: roles(), problem: "unapproved", detail: "1 of 2 required approvals",
			build: func(c *chain) {
				rev := c.next(lifecycle.Review, "alice")
				c.decide(rev, lifecycle.Approve, "bob")
				c.next(lifecycle.Published, "rm")
			}},
		{name: "publication counting the publisher's own approval", roles: roles(), problem: "unapproved", detail: "1 of 2 required approvals",
			build: func(c *chain) {
				rev := c.next(lifecycle.Review, "alice")
				c.decide(rev, lifecycle.Approve, "bob")
				c.decide(rev, lifecycle.Approve, "carol")
				c.next(lifecycle.Published, "carol")
			}},
		{name: "publication of a rejected review", roles: roles(), problem: "unapproved", detail: "rejected",
			build: func(c *chain) {
				rev := c.next(lifecycle.Review, "alice")
				c.decide(rev, lifecycle.Approve, "bob")
				c.decide(rev, lifecycle.Approve, "carol")
				c.decide(rev, lifecycle.Reject, "dave")
				c.next(lifecycle.Published, "rm")
			}},
		{name: "publication on the approvals of an older round", roles: roles(), problem: "unapproved", detail: "0 of 2 required approvals",
			build: func(c *chain) {
				rev := c.next(lifecycle.Review, "alice")
				c.decide(rev, lifecycle.Approve, "bob")
				c.decide(rev, lifecycle.Approve, "carol")
				c.decide(rev, lifecycle.Reject, "dave")
				c.next(lifecycle.Review, "alice")
				c.next(lifecycle.Published, "rm")
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newChain(t)
			tc.build(c)
			st, err := lifecycle.Evaluate(c.input(tc.roles))
			var ce *lifecycle.ChainError
			if !errors.As(err, &ce) || !errors.Is(err, errdef.ErrVerification) {
				t.Fatalf("err = %v, want a *ChainError; status %+v", err, st)
			}
			if ce.Problem != tc.problem || !strings.Contains(ce.Detail, tc.detail) || ce.Workflow != wf || len(ce.IDs) == 0 {
				t.Fatalf("problem %q detail %q ids %v, want %q mentioning %q", ce.Problem, ce.Detail, ce.IDs, tc.problem, tc.detail)
			}
			if st == nil {
				t.Fatal("no status with the error")
			}
			for _, id := range ce.IDs {
				if !lifecycle.ValidID(id) {
					t.Fatalf("IDs %v", ce.IDs)
				}
			}
			t.Log(err)
		})
	}
}

// Events by signers the policy does not allow their transition are
// ignored, with the reason, and leave the state as it was: an outsider
// cannot retire a version, nor a deprecator publish it.
func TestEvaluateIgnoresWhatSignersMayNotRecord(t *testing.T) {
	c := newChain(t)
	rev := c.next(lifecycle.Review, "alice")
	c.decide(rev, lifecycle.Approve, "bob")
	c.decide(rev, lifecycle.Approve, "dave")
	pub := c.next(lifecycle.Published, "rm")
	retire := c.event(&pub, lifecycle.Retired, "mallory")
	retireByAuthor := c.event(&pub, lifecycle.Retired, "alice") // retire is rm's alone
	publishAgain := c.event(nil, lifecycle.Published, "bob")    // a forking first link, by an approver
	c.add(retire, retireByAuthor, publishAgain)
	st := c.evaluate(roles())
	if st.State != lifecycle.Published || len(st.Chain) != 2 || st.Last().ID != pub.ID {
		t.Fatalf("state %s, chain %d; the ignored events moved it", st.State, len(st.Chain))
	}
	for _, e := range []lifecycle.Signed[lifecycle.Event]{retire, retireByAuthor, publishAgain} {
		ig := ignoredFor(st, e.ID)
		if ig == nil || ig.Kind != "event" || ig.State != e.Value.State || !slices.Equal(ig.Signers, e.Signers) ||
			!strings.Contains(ig.Reason, "who may not record "+string(e.Value.State)) {
			t.Fatalf("ignored %+v for %s by %v", ig, e.Value.State, e.Signers)
		}
	}
	if ig := ignoredFor(st, retire.ID); !strings.Contains(ig.Reason, "signed by mallory") || !strings.Contains(ig.Reason, "allowed: rm") {
		t.Fatalf("reason %q", ig.Reason)
	}
	if !slices.IsSorted(ignoredIDs(st)) {
		t.Fatalf("ignored not sorted: %v", ignoredIDs(st))
	}

	// An event about another version does not count either.
	c = newChain(t)
	e := c.event(nil, lifecycle.Published, "alice")
	e.Value.Workflow = other
	c.add(c.sign(e.Value, "alice"))
	st = c.evaluate(open())
	if st.State != lifecycle.Published || !st.Implicit || len(st.Chain) != 0 || len(st.Ignored) != 1 || !strings.Contains(st.Ignored[0].Reason, "names workflow "+other) {
		t.Fatalf("event about another version: %+v", st)
	}
}

// One event stored twice (two formats, two signers) is one link whose
// signers are the union.
func TestEvaluateMergesCopies(t *testing.T) {
	c := newChain(t)
	pub := c.event(nil, lifecycle.Published, "alice")
	dep := c.event(&pub, lifecycle.Deprecated, "alice")
	byOther := dep
	byOther.Signers = []string{"carol", "alice"}
	c.add(pub, dep, pub, byOther, dep)
	st := c.evaluate(open())
	if st.State != lifecycle.Deprecated || len(st.Chain) != 2 || len(st.Ignored) != 0 {
		t.Fatalf("status %+v", st)
	}
	if got := st.Chain[1].Signers; !slices.Equal(got, []string{"alice", "carol"}) {
		t.Fatalf("signers %v, want alice and carol", got)
	}
	if got := st.Chain[0].Signers; !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("signers %v", got)
	}
	// Merging does not change the caller's slices.
	if !slices.Equal(byOther.Signers, []string{"carol", "alice"}) {
		t.Fatalf("input changed: %v", byOther.Signers)
	}
}

// Approvals: a threshold of a named set, each signer counted once, the
// author's and others' approvals not counted, a rejection sending the
// version back to draft and a new submission starting a new round.
func TestEvaluateApprovals(t *testing.T) {
	c := newChain(t)
	r := roles()
	r.Approve.Signers = append(r.Approve.Signers, "alice") // an approver may author
	rev := c.next(lifecycle.Review, "alice")
	own := c.decide(rev, lifecycle.Approve, "alice")
	outsider := c.decide(rev, lifecycle.Approve, "mallory")
	b1 := c.decide(rev, lifecycle.Approve, "bob")
	b2 := c.approval(lifecycle.Approval{Workflow: wf, Request: rev.ID, Decision: lifecycle.Approve, Time: t0.Add(time.Hour), Comment: "again"}, "bob")
	c.approvals = append(c.approvals, b2)
	elsewhere := c.approval(lifecycle.Approval{Workflow: other, Request: rev.ID, Decision: lifecycle.Approve, Time: t0}, "carol")
	unknown := c.approval(lifecycle.Approval{Workflow: wf, Request: other, Decision: lifecycle.Approve, Time: t0}, "carol")
	c.approvals = append(c.approvals, elsewhere, unknown)
	st := c.evaluate(r)
	if st.State != lifecycle.Review || !slices.Equal(st.Round.Approvers(), []string{"bob"}) || len(st.Round.Approvals) != 2 {
		t.Fatalf("one distinct approver: state %s, approvers %v, votes %d", st.State, st.Round.Approvers(), len(st.Round.Approvals))
	}
	for id, want := range map[string]string{
		own.ID:       "the author or publisher",
		outsider.ID:  "who may not approve",
		elsewhere.ID: "names workflow " + other,
		unknown.ID:   "not a counted submission",
	} {
		if ig := ignoredFor(st, id); ig == nil || ig.Kind != "approval" || !strings.Contains(ig.Reason, want) {
			t.Fatalf("approval %s: ignored %+v, want a reason mentioning %q", id, ig, want)
		}
	}
	if ignoredFor(st, b1.ID) != nil || ignoredFor(st, b2.ID) != nil {
		t.Fatal("bob's approvals ignored")
	}

	// A second approver approves it; a publisher who approved does not
	// count towards the approvals of their own publication.
	c.decide(rev, lifecycle.Approve, "carol")
	if st := c.evaluate(r); st.State != lifecycle.Approved || len(st.Round.Approvers()) != 2 {
		t.Fatalf("approved: %s %v", st.State, st.Round.Approvers())
	}

	// A rejection sends it back to draft.
	rej := c.decide(rev, lifecycle.Reject, "dave")
	st = c.evaluate(r)
	if st.State != lifecycle.Draft || !st.Rejected || st.Round == nil || len(st.Round.Rejections) != 1 || st.Round.Rejections[0].ID != rej.ID {
		t.Fatalf("rejected: %+v", st)
	}

	// A new submission opens a new round: the old round's approvals do not
	// count for it.
	rev2 := c.next(lifecycle.Review, "alice")
	st = c.evaluate(r)
	if st.State != lifecycle.Review || st.Rejected || st.Round.Request != rev2.ID || len(st.Round.Approvals) != 0 || len(st.Round.Rejections) != 0 {
		t.Fatalf("new round: %+v (round %+v)", st, st.Round)
	}
	c.decide(rev2, lifecycle.Approve, "dave")
	c.decide(rev2, lifecycle.Approve, "carol")
	c.next(lifecycle.Published, "rm")
	if st := c.evaluate(r); st.State != lifecycle.Published || st.Round != nil {
		t.Fatalf("published after the second round: %+v", st)
	}
}

// An approval signed by two approvers counts for both; an approval signed
// by the author and an approver counts for the approver.
func TestEvaluateApprovalSignedTwice(t *testing.T) {
	c := newChain(t)
	r := roles()
	r.Approve.Signers = append(r.Approve.Signers, "alice")
	rev := c.next(lifecycle.Review, "alice")
	c.decide(rev, lifecycle.Approve, "alice", "bob")
	st := c.evaluate(r)
	if st.State != lifecycle.Review || !slices.Equal(st.Round.Approvers(), []string{"bob"}) {
		t.Fatalf("author and approver: %s %v", st.State, st.Round.Approvers())
	}
	c.decide(rev, lifecycle.Approve, "carol", "dave")
	if st := c.evaluate(r); st.State != lifecycle.Approved || len(st.Round.Approvers()) != 3 {
		t.Fatalf("two approvers on one approval: %s %v", st.State, st.Round.Approvers())
	}
}

// Emergency retirements count once the emergency approver set agrees: the
// event's signer counts if in the set; below the threshold the event is
// pending and the version stays as it was.
func TestEvaluateEmergency(t *testing.T) {
	emergency := &lifecycle.Emergency{Justification: "key leaked", Impact: "all runs", Remediation: "rotate"}
	setup := func(t *testing.T, signer string) (*chain, lifecycle.Signed[lifecycle.Event]) {
		c := newChain(t)
		rev := c.next(lifecycle.Review, "alice")
		c.decide(rev, lifecycle.Approve, "bob")
		c.decide(rev, lifecycle.Approve, "dave")
		pub := c.next(lifecycle.Published, "rm")
		e := c.event(&pub, lifecycle.Retired, signer)
		e.Value.Emergency = emergency
		e = c.sign(e.Value, signer)
		c.add(e)
		return c, e
	}
	t.Run("pending below the threshold", func(t *testing.T) {
		c, e := setup(t, "sec1")
		st := c.evaluate(roles())
		if st.State != lifecycle.Published || st.Emergency || len(st.Pending) != 1 || st.Pending[0].ID != e.ID || st.Pending[0].Needed != 2 || len(st.Pending[0].Approvals) != 0 {
			t.Fatalf("status %+v", st)
		}
		// An approval by someone outside the set does not count.
		c.decide(e, lifecycle.Approve, "rm")
		c.decide(e, lifecycle.Reject, "sec2")
		st = c.evaluate(roles())
		if st.State != lifecycle.Published || len(st.Pending) != 1 {
			t.Fatalf("after an outsider's approval and a rejection: %+v", st)
		}
	})
	t.Run("counted at the threshold, the signer counting", func(t *testing.T) {
		c, e := setup(t, "sec1")
		c.decide(e, lifecycle.Approve, "sec1") // the signer again: still one
		if st := c.evaluate(roles()); st.State != lifecycle.Published || len(st.Pending) != 1 {
			t.Fatalf("the signer's own approval counted twice: %+v", st)
		}
		c.decide(e, lifecycle.Approve, "sec3")
		st := c.evaluate(roles())
		if st.State != lifecycle.Retired || !st.Emergency || len(st.Pending) != 0 || st.Last().ID != e.ID || len(st.Last().Approvals) == 0 {
			t.Fatalf("status %+v", st)
		}
		se := &lifecycle.StateError{Reference: "r", State: st.State, Restriction: st.State.Restriction(), Emergency: st.Emergency}
		if !errors.Is(se, errdef.ErrLifecycle) || !strings.Contains(se.Error(), "by emergency") {
			t.Fatalf("state error %v", se)
		}
	})
	t.Run("the signer in the set and one approval", func(t *testing.T) {
		r := roles()
		r.Emergency.Signers = append(r.Emergency.Signers, "rm")
		c, e := setup(t, "rm")
		if st := c.evaluate(r); st.State != lifecycle.Published || len(st.Pending) != 1 {
			t.Fatalf("the signer alone: %+v", st)
		}
		c.decide(e, lifecycle.Approve, "sec2")
		if st := c.evaluate(r); st.State != lifecycle.Retired || !st.Emergency || len(st.Pending) != 0 {
			t.Fatalf("the signer and one approval: %+v", st)
		}
	})
	t.Run("ignored without an emergency set", func(t *testing.T) {
		c, e := setup(t, "rm")
		r := roles()
		r.Emergency = lifecycle.Quorum{}
		st := c.evaluate(r)
		if ig := ignoredFor(st, e.ID); st.State != lifecycle.Published || ig == nil || !strings.Contains(ig.Reason, "names no emergency approvers") || len(st.Pending) != 0 {
			t.Fatalf("status %+v", st)
		}
	})
	t.Run("ignored when signed outside the set", func(t *testing.T) {
		c, e := setup(t, "rm")
		c.decide(e, lifecycle.Approve, "sec1")
		c.decide(e, lifecycle.Approve, "sec2")
		st := c.evaluate(roles())
		if ig := ignoredFor(st, e.ID); st.State != lifecycle.Published || ig == nil || !strings.Contains(ig.Reason, "not signed by the emergency approver set") {
			t.Fatalf("status %+v", st)
		}
	})
}

// Errors name what failed and match their sentinels.
func TestErrors(t *testing.T) {
	te := &lifecycle.TransitionError{Workflow: "r@" + wf, From: lifecycle.Archived, To: lifecycle.Deprecated, Rule: "the lifecycle state machine does not allow it"}
	if !errors.Is(te, errdef.ErrLifecycle) || !strings.Contains(te.Error(), "none: the version is final") {
		t.Fatalf("%v", te)
	}
	te.From, te.Allowed = lifecycle.Published, lifecycle.Next(lifecycle.Published)
	if !strings.Contains(te.Error(), "allowed from published: deprecated, retired, quarantined") {
		t.Fatalf("%v", te)
	}
	se := &lifecycle.StateError{Reference: "r", State: lifecycle.Deprecated, Restriction: "no_new_references", Reason: "old", Replacement: "r@" + other}
	if !strings.Contains(se.Error(), "r is deprecated (no_new_references): old; use r@"+other+" instead") {
		t.Fatalf("%v", se)
	}
	if errors.Is(se, errdef.ErrVerification) {
		t.Fatal("a state error is not a verification failure")
	}
}

// The state machine, as the immutability policy draws it.
func TestStateMachine(t *testing.T) {
	allowed := map[[2]lifecycle.State]bool{
		{lifecycle.Draft, lifecycle.Review}:           true,
		{lifecycle.Draft, lifecycle.Published}:        true,
		{lifecycle.Review, lifecycle.Published}:       true,
		{lifecycle.Approved, lifecycle.Published}:     true,
		{lifecycle.Published, lifecycle.Deprecated}:   true,
		{lifecycle.Published, lifecycle.Retired}:      true,
		{lifecycle.Deprecated, lifecycle.Retired}:     true,
		{lifecycle.Retired, lifecycle.Archived}:       true,
		{lifecycle.Published, lifecycle.Quarantined}:  true,
		{lifecycle.Deprecated, lifecycle.Quarantined}: true,
		// A release: Evaluate also checks it returns to the state before.
		{lifecycle.Quarantined, lifecycle.Published}:  true,
		{lifecycle.Quarantined, lifecycle.Deprecated}: true,
	}
	for _, from := range lifecycle.States() {
		for _, to := range lifecycle.States() {
			if got := lifecycle.CanTransition(from, to); got != allowed[[2]lifecycle.State{from, to}] {
				t.Errorf("%s -> %s: %v", from, to, got)
			}
		}
	}
	for _, s := range lifecycle.States() {
		if (lifecycle.RoleFor(s) == "") != (s == lifecycle.Draft || s == lifecycle.Approved) {
			t.Errorf("role for %s: %q", s, lifecycle.RoleFor(s))
		}
	}
	if lifecycle.State("frozen").Valid() {
		t.Fatal("frozen is a state")
	}
}

// With a bare key (roles that name nobody), a version taken through the
// lifecycle by other signers is published when the key's own event links
// to the served history it cannot verify; the link is still checked, and
// with lifecycle roles, or without the linked event served, the chain
// fails closed as before.
func TestEvaluateAfterUnverifiedHistory(t *testing.T) {
	c := newChain(t)
	rev := c.event(nil, lifecycle.Review, "author")
	pub := c.event(&rev, lifecycle.Published, "alice")
	c.add(pub)
	in := c.input(open())
	in.Unverified = []lifecycle.Signed[lifecycle.Event]{{Value: rev.Value, ID: rev.ID}}
	st, err := lifecycle.Evaluate(in)
	if err != nil {
		t.Fatalf("key-only, after a served review by another signer: %v", err)
	}
	if st.State != lifecycle.Published || len(st.Chain) != 1 || st.Chain[0].ID != pub.ID ||
		st.After == nil || st.After.ID != rev.ID || st.After.State != lifecycle.Review || st.After.Sequence != 1 {
		t.Fatalf("status %+v (after %+v)", st, st.After)
	}
	if h := st.Head(); h.Sequence != 2 || h.ID != pub.ID {
		t.Fatalf("head %+v", h)
	}
	// The key's later events follow the state machine from there.
	ret := c.event(&pub, lifecycle.Retired, "alice")
	c.add(ret)
	in = c.input(open())
	in.Unverified = []lifecycle.Signed[lifecycle.Event]{{Value: rev.Value, ID: rev.ID}}
	if st, err := lifecycle.Evaluate(in); err != nil || st.State != lifecycle.Retired {
		t.Fatalf("retired after entry: %v %+v", err, st)
	}

	for _, tc := range []struct {
		name, problem, detail string
		mutate                func(in *lifecycle.Input)
	}{
		{"linked event not served", "broken link", "not in the chain served", func(in *lifecycle.Input) { in.Unverified = nil }},
		{"another workflow's event", "broken link", "not in the chain served", func(in *lifecycle.Input) {
			other := rev.Value
			other.Workflow = "sha256:" + strings.Repeat("0", 64)
			in.Unverified = []lifecycle.Signed[lifecycle.Event]{{Value: other, ID: rev.ID}}
		}},
		{"with lifecycle roles", "broken link", "not in the chain served", func(in *lifecycle.Input) { in.Roles = lifecycle.Roles{Publish: []string{"alice"}} }},
		{"sequence does not follow the linked event", "order", "want 3", func(in *lifecycle.Input) {
			r := rev.Value
			r.Sequence = 2
			in.Unverified = []lifecycle.Signed[lifecycle.Event]{{Value: r, ID: rev.ID}}
		}},
		{"two counted events after unverified ones", "fork", "start the chain after unverified events", func(in *lifecycle.Input) {
			rev2 := c.event(nil, lifecycle.Review, "mallory")
			rev2.Value.Actor = "mallory"
			rev2 = c.sign(rev2.Value)
			pub2 := c.event(&rev2, lifecycle.Published, "alice")
			in.Events = []lifecycle.Signed[lifecycle.Event]{pub, pub2}
			in.Unverified = append(in.Unverified, lifecycle.Signed[lifecycle.Event]{Value: rev2.Value, ID: rev2.ID})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := lifecycle.Input{Workflow: wf, Events: []lifecycle.Signed[lifecycle.Event]{pub}, Roles: open(), Signers: []string{"alice"}, Signed: true,
				Unverified: []lifecycle.Signed[lifecycle.Event]{{Value: rev.Value, ID: rev.ID}}}
			tc.mutate(&in)
			_, err := lifecycle.Evaluate(in)
			var ce *lifecycle.ChainError
			if !errors.As(err, &ce) || ce.Problem != tc.problem || !strings.Contains(ce.Detail, tc.detail) {
				t.Fatalf("got %v, want a %s chain error naming %q", err, tc.problem, tc.detail)
			}
		})
	}
}
