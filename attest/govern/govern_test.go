package govern_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// refused fails the test unless err is a *lifecycle.TransitionError whose
// rule mentions want.
func refused(t *testing.T, what string, err error, want string) {
	t.Helper()
	var te *lifecycle.TransitionError
	if !errors.As(err, &te) || !errors.Is(err, errdef.ErrLifecycle) {
		t.Fatalf("%s: err = %v, want a *lifecycle.TransitionError", what, err)
	}
	if !strings.Contains(te.Rule, want) {
		t.Fatalf("%s: rule %q, want it to mention %q", what, te.Rule, want)
	}
	t.Logf("%s: %v", what, err)
}

// must returns a function that checks a call recorded a new fact and
// left the version in state want: must(t, what, want)(rec.Transition(...)).
func must(t *testing.T, what string, want lifecycle.State) func(*govern.Result, error) *govern.Result {
	return func(res *govern.Result, err error) *govern.Result {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if res.State != want || res.Existing || !lifecycle.ValidID(res.ID) || res.Status == nil || res.Status.State != want {
			t.Fatalf("%s: state %s (existing %v, id %q), want %s", what, res.State, res.Existing, res.ID, want)
		}
		return res
	}
}

// The lifecycle of one version, through the library, on the ociwf
// registry: a draft is submitted, reviewed by two others, published,
// deprecated and retired; each step refuses what would not count before
// anything is signed.
func TestLifecycleAcceptance(t *testing.T) {
	ctx := context.Background()
	e := extension(t, reviewed(), accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{StateStore: lifecycle.NewMemoryStore()})
	v := e.verifier(verify.Options{})
	s := keys.signer

	st, err := v.Lifecycle(ctx, ref)
	if err != nil || st.State != lifecycle.Draft || len(st.Chain) != 0 || st.Digest != subj.Digest.String() || len(st.Signers) != 0 {
		t.Fatalf("a pushed version: %v %+v", err, st)
	}
	if _, _, err := v.Verify(ctx, ref); !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("an unsigned draft verified: %v", err)
	}
	_, err = rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{})
	refused(t, "publishing a draft", err, "publication needs 2 approvals")
	_, err = rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{})
	refused(t, "approving a draft", err, "no review is open")
	_, err = rec.Transition(ctx, ref, s["bob"], lifecycle.Review, govern.EventOptions{})
	refused(t, "a reviewer submitting", err, "alice is allowed to submit")

	sub := must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{Actor: "alice"}))
	if sub.From != lifecycle.Draft || sub.Reference != subj.String() || sub.Status.Round == nil || sub.Status.Round.Request != sub.ID {
		t.Fatalf("submission %+v", sub)
	}
	_, err = rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{})
	refused(t, "publishing without approvals", err, "the version has 0")

	must(t, "bob approves", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{Actor: "bob", Comment: "lgtm",
		Checklist: []lifecycle.ChecklistItem{{Item: "tests", Outcome: "pass"}}, Risk: &lifecycle.Risk{Level: "low"}}))
	_, err = rec.Decide(ctx, ref, s["alice"], lifecycle.Approve, govern.ApprovalOptions{})
	refused(t, "the author approving", err, "alice submitted the version and may not approve it")
	_, err = rec.Decide(ctx, ref, s["rm"], lifecycle.Approve, govern.ApprovalOptions{})
	refused(t, "a release manager approving", err, "this key is rm")
	_, err = rec.Decide(ctx, ref, s["mallory"], lifecycle.Approve, govern.ApprovalOptions{})
	refused(t, "an unknown key approving", err, "this key is not in the trust policy")
	_, err = rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{Request: subj.Digest.String()})
	refused(t, "approving another request", err, "is not the open one")
	_, err = rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{})
	refused(t, "publishing with one approval", err, "the version has 1")

	ok := must(t, "carol approves", lifecycle.Approved)(rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{}))
	if got := ok.Status.Round.Approvers(); !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("approvers %v", got)
	}
	_, err = rec.PublicationEvent(ctx, ref, s["bob"], govern.EventOptions{})
	refused(t, "a reviewer publishing", err, "alice, rm is allowed to publish")
	ev, err := rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{Actor: "alice"})
	if err != nil || ev == nil || ev.State != lifecycle.Published || ev.Previous != sub.ID || ev.Sequence != 2 || ev.Workflow != subj.Digest.String() {
		t.Fatalf("publication event %+v, %v", ev, err)
	}

	e.sign(subj)
	pub := must(t, "publish", lifecycle.Published)(rec.Transition(ctx, ref, s["alice"], lifecycle.Published, govern.EventOptions{Actor: "alice"}))
	if pub.From != lifecycle.Approved || pub.Status.Last().Event.Previous != sub.ID {
		t.Fatalf("publication %+v", pub)
	}
	if ev, err := rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{}); err != nil || ev != nil {
		t.Fatalf("the publication recorded: %+v %v, want nil", ev, err)
	}
	_, rep, err := v.Verify(ctx, ref)
	if err != nil || !rep.Verified || rep.Lifecycle.State != lifecycle.Published || rep.Check(verify.CheckLifecycle).Status != verify.Pass {
		t.Fatalf("published: %v %+v", err, rep)
	}
	_, err = rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{})
	refused(t, "submitting a published version", err, "state machine")

	replacement := e.host + "/wf/release@sha256:" + strings.Repeat("c", 64)
	must(t, "deprecate", lifecycle.Deprecated)(rec.Transition(ctx, ref, s["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "superseded", Replacement: replacement}))
	_, rep, err = v.Verify(ctx, ref)
	if err != nil || !rep.Verified || rep.Check(verify.CheckLifecycle).Status != verify.Warn || !strings.Contains(rep.Check(verify.CheckLifecycle).Detail, "use "+replacement) {
		t.Fatalf("deprecated: %v %+v", err, rep)
	}
	_, err = rec.Transition(ctx, ref, s["bob"], lifecycle.Retired, govern.EventOptions{Reason: "x"})
	refused(t, "a reviewer retiring", err, "alice is allowed to retire")
	if _, err := rec.Transition(ctx, ref, s["alice"], lifecycle.Retired, govern.EventOptions{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("a retirement without a reason: %v", err)
	}

	must(t, "retire", lifecycle.Retired)(rec.Transition(ctx, ref, s["alice"], lifecycle.Retired, govern.EventOptions{Reason: "CVE-2026-1234"}))
	p, rep, err := verify.Fetch(ctx, ref, e.pol, e.o, verify.Options{})
	var se *lifecycle.StateError
	if p != nil || !errors.Is(err, errdef.ErrLifecycle) || !errors.Is(err, errdef.ErrVerification) || !errors.As(err, &se) {
		t.Fatalf("Fetch of a retired version: plan %v, %v", p != nil, err)
	}
	if se.State != lifecycle.Retired || se.Reason != "CVE-2026-1234" || se.Restriction != "cannot_be_used" || rep.Failed().Name != verify.CheckLifecycle {
		t.Fatalf("state error %+v, failed %+v", se, rep.Failed())
	}
	st, err = v.Lifecycle(ctx, ref)
	if err != nil || st.State != lifecycle.Retired || len(st.Chain) != 4 || len(st.Warnings) != 0 || !slices.Equal(st.Signers, []string{"alice"}) {
		t.Fatalf("status of the retired version: %v %+v", err, st)
	}
	_, err = rec.Transition(ctx, ref, s["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "x"})
	refused(t, "deprecating a retired version", err, "state machine")
}

// Approvals are of one version: an approval of the review of v1 does not
// count for v2, one changed line later, whether it names v1 or v1's
// submission.
func TestApprovalsDoNotCarryOver(t *testing.T) {
	ctx := context.Background()
	e := extension(t, reviewed(), accessory.RegistryOptions{})
	s := keys.signer
	rec := e.recorder(verify.Options{})
	v1ref, v2ref := e.host+"/wf/release:1.4.0", e.host+"/wf/release:1.4.1"
	v1 := e.push(v1ref, nil)
	sub1 := must(t, "submit v1", lifecycle.Review)(rec.Transition(ctx, v1ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	must(t, "approve v1", lifecycle.Review)(rec.Decide(ctx, v1ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))

	v2 := e.push(v2ref, changed(t))
	if v2.Digest == v1.Digest {
		t.Fatal("one digest for two versions")
	}
	sub2 := must(t, "submit v2", lifecycle.Review)(rec.Transition(ctx, v2ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	if n := len(sub2.Status.Round.Approvals); n != 0 {
		t.Fatalf("v2's round starts with %d approvals", n)
	}
	// Approvals written for v2's subject, naming v1 or v1's submission.
	now := time.Now().UTC().Truncate(time.Second)
	replayed := []string{
		e.attestApproval(v2, "carol", lifecycle.Approval{Workflow: v1.Digest.String(), Request: sub1.ID, Decision: lifecycle.Approve, Time: now}),
		e.attestApproval(v2, "carol", lifecycle.Approval{Workflow: v2.Digest.String(), Request: sub1.ID, Decision: lifecycle.Approve, Time: now}),
	}
	st, err := e.verifier(verify.Options{}).Lifecycle(ctx, v2ref)
	if err != nil || st.State != lifecycle.Review || len(st.Round.Approvals) != 0 {
		t.Fatalf("v2: %v %+v", err, st)
	}
	for _, id := range replayed {
		if !slices.ContainsFunc(st.Ignored, func(ig lifecycle.Ignored) bool { return ig.ID == id }) ||
			!slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, id) }) {
			t.Fatalf("approval %s not reported as ignored: %+v %v", id, st.Ignored, st.Warnings)
		}
	}
	// v1's review is untouched.
	st, err = e.verifier(verify.Options{}).Lifecycle(ctx, v1ref)
	if err != nil || st.State != lifecycle.Review || len(st.Round.Approvals) != 1 {
		t.Fatalf("v1: %v %+v", err, st)
	}
}

// Every storage form holds the same chain: legacy attestations under the
// tag scheme or as referrers, sigstore bundles, both. Written in both
// formats, each fact is stored twice and counted once.
func TestStorageForms(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	for _, tc := range []struct {
		name string
		ro   accessory.RegistryOptions
	}{
		{"tag scheme", accessory.RegistryOptions{Mode: accessory.TagScheme}},
		{"referrers", accessory.RegistryOptions{Mode: accessory.Referrers}},
		{"bundles", accessory.RegistryOptions{Format: accessory.FormatBundle}},
		{"both, tag scheme", accessory.RegistryOptions{Mode: accessory.TagScheme, Format: accessory.FormatBoth}},
		{"both, referrers", accessory.RegistryOptions{Mode: accessory.Referrers, Format: accessory.FormatBoth}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := extension(t, reviewed(), tc.ro)
			ref := e.host + "/wf/release:1.4.0"
			subj := e.push(ref, nil)
			rec := e.recorder(verify.Options{})
			must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
			bob := must(t, "bob", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))
			if n := len(bob.Status.Round.Approvals); n != 1 {
				t.Fatalf("one approval counted as %d votes", n)
			}
			must(t, "carol", lifecycle.Approved)(rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{}))
			e.sign(subj)
			must(t, "publish", lifecycle.Published)(rec.Transition(ctx, ref, s["rm"], lifecycle.Published, govern.EventOptions{}))
			must(t, "deprecate", lifecycle.Deprecated)(rec.Transition(ctx, ref, s["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "old"}))

			st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			var states []lifecycle.State
			for _, l := range st.Chain {
				states = append(states, l.Event.State)
			}
			if !slices.Equal(states, []lifecycle.State{lifecycle.Review, lifecycle.Published, lifecycle.Deprecated}) || st.State != lifecycle.Deprecated ||
				len(st.Ignored) != 0 || len(st.Warnings) != 0 || !slices.Equal(st.Chain[1].Signers, []string{"rm"}) {
				t.Fatalf("chain %v, state %s, ignored %+v, warnings %v", states, st.State, st.Ignored, st.Warnings)
			}
			legacy, bundles := e.stored(subj)
			wantLegacy, wantBundles := 5, 0 // three events, two approvals
			switch tc.ro.Format {
			case accessory.FormatBundle:
				wantLegacy, wantBundles = 0, 5
			case accessory.FormatBoth:
				wantBundles = 5
			}
			if legacy != wantLegacy || bundles != wantBundles {
				t.Fatalf("stored %d legacy and %d bundle statements, want %d and %d", legacy, bundles, wantLegacy, wantBundles)
			}
			_, rep, err := e.verifier(verify.Options{}).Verify(ctx, ref)
			if err != nil || !rep.Verified || rep.Lifecycle == nil || len(rep.Lifecycle.Chain) != 3 {
				t.Fatalf("verify: %v %+v", err, rep)
			}
		})
	}
}

// Rerunning a step writes nothing and says the fact exists.
func TestIdempotency(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	e := extension(t, reviewed(), accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	again := func(what string, first *govern.Result, do func() (*govern.Result, error)) {
		t.Helper()
		before, _ := e.stored(subj)
		res, err := do()
		after, _ := e.stored(subj)
		if err != nil || !res.Existing || res.ID != first.ID || res.State != first.State {
			t.Fatalf("%s again: %v %+v, want the existing %s", what, err, res, first.ID)
		}
		if after != before {
			t.Fatalf("%s again wrote %d statements", what, after-before)
		}
	}
	submit := func() (*govern.Result, error) {
		return rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{})
	}
	approve := func(who string) func() (*govern.Result, error) {
		return func() (*govern.Result, error) {
			return rec.Decide(ctx, ref, s[who], lifecycle.Approve, govern.ApprovalOptions{Comment: "rerun " + who})
		}
	}
	first := must(t, "submit", lifecycle.Review)(submit())
	again("submit", first, submit)
	first = must(t, "bob", lifecycle.Review)(approve("bob")())
	again("bob's approval", first, approve("bob"))
	first = must(t, "carol", lifecycle.Approved)(approve("carol")())
	again("carol's approval", first, approve("carol"))
	e.sign(subj)
	publish := func() (*govern.Result, error) {
		return rec.Transition(ctx, ref, s["alice"], lifecycle.Published, govern.EventOptions{})
	}
	first = must(t, "publish", lifecycle.Published)(publish())
	again("publish", first, publish)
	deprecate := func(reason string) func() (*govern.Result, error) {
		return func() (*govern.Result, error) {
			return rec.Transition(ctx, ref, s["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: reason})
		}
	}
	first = must(t, "deprecate", lifecycle.Deprecated)(deprecate("old")())
	again("deprecate", first, deprecate("old"))
	again("deprecate with another reason", first, deprecate("older"))

	// An emergency retirement: pending until the second emergency
	// approver agrees; each step rerun.
	emergency := &lifecycle.Emergency{Justification: "key leaked", Impact: "every run", Remediation: "rotate and republish"}
	retire := func() (*govern.Result, error) {
		return rec.Transition(ctx, ref, s["sec1"], lifecycle.Retired, govern.EventOptions{Reason: "leak", Emergency: emergency})
	}
	res, err := retire()
	if err != nil || res.State != lifecycle.Deprecated || res.Pending == nil || res.Pending.Needed != 2 {
		t.Fatalf("emergency retirement: %v %+v", err, res)
	}
	again("emergency retirement", res, retire)
	decide := func() (*govern.Result, error) {
		return rec.Decide(ctx, ref, s["sec2"], lifecycle.Approve, govern.ApprovalOptions{Emergency: true})
	}
	first = must(t, "emergency approval", lifecycle.Retired)(decide())
	if !first.Status.Emergency {
		t.Fatalf("not flagged emergency: %+v", first.Status)
	}
	again("emergency approval", first, decide)
	again("emergency retirement after its approval", &govern.Result{ID: res.ID, State: lifecycle.Retired}, retire)
}

// A publisher's own approval does not count for their publication: govern
// refuses it before writing an event that would break the chain.
func TestPublisherApprovalDoesNotCount(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	r := lifecycle.Roles{Approve: lifecycle.Quorum{Signers: []string{"bob", "carol"}, Threshold: 2}, Publish: []string{"carol", "rm"}}
	e := extension(t, r, accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	must(t, "bob", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))
	must(t, "carol", lifecycle.Approved)(rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{}))
	e.sign(subj)
	_, err := rec.PublicationEvent(ctx, ref, s["carol"], govern.EventOptions{})
	refused(t, "carol publishing on her own approval", err, "carol")
	before, _ := e.stored(subj)
	_, err = rec.Transition(ctx, ref, s["carol"], lifecycle.Published, govern.EventOptions{})
	refused(t, "carol publishing on her own approval", err, "carol")
	if after, _ := e.stored(subj); after != before {
		t.Fatalf("a refused publication wrote %d statements", after-before)
	}
	if st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref); err != nil || st.State != lifecycle.Approved {
		t.Fatalf("after the refusal: %v %+v", err, st)
	}
	must(t, "rm publishes", lifecycle.Published)(rec.Transition(ctx, ref, s["rm"], lifecycle.Published, govern.EventOptions{}))
}

// A version published by its signature alone (no approvals required, no
// events) is published: submitting it for review would take it out of
// use, which the state machine does not allow. Its publication may still
// be recorded, and it may be deprecated.
func TestImplicitPublication(t *testing.T) {
	ctx := context.Background()
	a := keys.signer["alice"]
	e := extension(t, lifecycle.Roles{}, accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	e.sign(subj)
	rec := e.recorder(verify.Options{})
	st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref)
	if err != nil || st.State != lifecycle.Published || !st.Implicit {
		t.Fatalf("signed: %v %+v", err, st)
	}
	_, err = rec.Transition(ctx, ref, a, lifecycle.Review, govern.EventOptions{})
	refused(t, "submitting a published version", err, "state machine")
	if n, _ := e.stored(subj); n != 0 {
		t.Fatalf("%d statements written", n)
	}
	pub := must(t, "record the publication", lifecycle.Published)(rec.Transition(ctx, ref, a, lifecycle.Published, govern.EventOptions{}))
	if pub.From != lifecycle.Published || len(pub.Status.Chain) != 1 || pub.Status.Implicit {
		t.Fatalf("publication %+v", pub)
	}
	must(t, "deprecate", lifecycle.Deprecated)(rec.Transition(ctx, ref, a, lifecycle.Deprecated, govern.EventOptions{Reason: "old"}))

	// Deprecating straight from the implicit publication works too.
	ref2 := e.host + "/wf/other:1.4.0"
	subj2 := e.push(ref2, changed(t))
	e.sign(subj2)
	dep := must(t, "deprecate the implicit publication", lifecycle.Deprecated)(rec.Transition(ctx, ref2, a, lifecycle.Deprecated, govern.EventOptions{Reason: "old"}))
	if dep.From != lifecycle.Published || dep.Status.Chain[0].Event.Sequence != 1 {
		t.Fatalf("deprecation %+v", dep)
	}
}

// A rejection sends the version back to draft; only a new submission
// reopens review, and its round starts from nothing.
func TestRejection(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	e := extension(t, reviewed(), accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	sub := must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	must(t, "bob", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))
	rej := must(t, "carol rejects", lifecycle.Draft)(rec.Decide(ctx, ref, s["carol"], lifecycle.Reject, govern.ApprovalOptions{Comment: "no tests"}))
	if !rej.Status.Rejected {
		t.Fatalf("not flagged rejected: %+v", rej.Status)
	}
	_, err := rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{})
	refused(t, "approving a rejected review", err, "the review was rejected")
	_, err = rec.PublicationEvent(ctx, ref, s["alice"], govern.EventOptions{})
	refused(t, "publishing a rejected version", err, "publication needs 2 approvals")
	sub2 := must(t, "resubmit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	if sub2.ID == sub.ID || sub2.Status.Round.Request != sub2.ID || len(sub2.Status.Round.Approvals) != 0 || sub2.Status.Last().Event.Previous != sub.ID {
		t.Fatalf("new round %+v", sub2.Status.Round)
	}
	must(t, "bob again", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))
	must(t, "carol now", lifecycle.Approved)(rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{}))
}

// Emergency retirements: only the emergency set records them, they need
// its threshold, and one recorded before the chain moved on cannot be
// approved (that would fork the chain): a new one is recorded instead.
func TestEmergencyRetirement(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	emergency := &lifecycle.Emergency{Justification: "compromised dependency", Impact: "all runs", Remediation: "pin the fixed release"}
	e := extension(t, reviewed(), accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	_, err := rec.Transition(ctx, ref, s["sec1"], lifecycle.Retired, govern.EventOptions{Reason: "x", Emergency: emergency})
	refused(t, "retiring a draft", err, "state machine")
	must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))
	must(t, "bob", lifecycle.Review)(rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{}))
	must(t, "carol", lifecycle.Approved)(rec.Decide(ctx, ref, s["carol"], lifecycle.Approve, govern.ApprovalOptions{}))
	e.sign(subj)
	must(t, "publish", lifecycle.Published)(rec.Transition(ctx, ref, s["alice"], lifecycle.Published, govern.EventOptions{}))

	_, err = rec.Transition(ctx, ref, s["alice"], lifecycle.Retired, govern.EventOptions{Reason: "x", Emergency: emergency})
	refused(t, "an emergency retirement by the author", err, "sec1, sec2 is allowed to emergency")
	_, err = rec.Decide(ctx, ref, s["sec2"], lifecycle.Approve, govern.ApprovalOptions{Emergency: true})
	refused(t, "approving no emergency", err, "no emergency retirement is pending")

	first, err := rec.Transition(ctx, ref, s["sec1"], lifecycle.Retired, govern.EventOptions{Reason: "CVE", Emergency: emergency})
	if err != nil || first.Pending == nil || first.State != lifecycle.Published {
		t.Fatalf("emergency retirement: %v %+v", err, first)
	}
	// The chain moves on while it waits.
	must(t, "deprecate", lifecycle.Deprecated)(rec.Transition(ctx, ref, s["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "old"}))
	before, _ := e.stored(subj)
	_, err = rec.Decide(ctx, ref, s["sec2"], lifecycle.Approve, govern.ApprovalOptions{Emergency: true})
	refused(t, "approving a stale emergency retirement", err, first.ID)
	if after, _ := e.stored(subj); after != before {
		t.Fatalf("a refused approval wrote %d statements", after-before)
	}
	second, err := rec.Transition(ctx, ref, s["sec1"], lifecycle.Retired, govern.EventOptions{Reason: "CVE", Emergency: emergency})
	if err != nil || second.Existing || second.ID == first.ID || second.Pending == nil || second.Pending.Event.Previous != second.Status.Last().ID {
		t.Fatalf("a new emergency retirement: %v %+v", err, second)
	}
	// Its signer's signature on it is their approval already: approving
	// it again would write a statement that changes nothing.
	before, _ = e.stored(subj)
	_, err = rec.Decide(ctx, ref, s["sec1"], lifecycle.Approve, govern.ApprovalOptions{Emergency: true})
	refused(t, "the emergency retirement's signer approving it", err, "sec1 recorded the emergency retirement")
	if after, _ := e.stored(subj); after != before {
		t.Fatalf("a refused approval wrote %d statements", after-before)
	}
	done := must(t, "approve it", lifecycle.Retired)(rec.Decide(ctx, ref, s["sec2"], lifecycle.Approve, govern.ApprovalOptions{Emergency: true}))
	if !done.Status.Emergency || done.Status.Last().ID != second.ID {
		t.Fatalf("retired: %+v", done.Status)
	}
	_, rep, err := e.verifier(verify.Options{}).Verify(ctx, ref)
	var se *lifecycle.StateError
	if !errors.As(err, &se) || !se.Emergency || se.State != lifecycle.Retired {
		t.Fatalf("Verify: %v %+v", err, rep)
	}
}

// One key listed under two names (two files holding one public key, which
// the policy check cannot see) is one signer: its approval must not count
// twice. Verification refuses the ambiguity rather than guess, and govern
// refuses to sign with such a key.
func TestOneKeyTwoNames(t *testing.T) {
	ctx := context.Background()
	s := keys.signer
	r := reviewed()
	r.Approve.Signers = append(r.Approve.Signers, "bob2")
	e := extension(t, r, accessory.RegistryOptions{})
	raw, err := os.ReadFile(keys.pub["bob"])
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "bob-again.pub")
	if err := os.WriteFile(copyPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	sc := &e.pol.TrustPolicies[0]
	sc.Lifecycle.Signers = append(sc.Lifecycle.Signers, trust.Signer{Name: "bob2", Key: copyPath})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	sub := must(t, "submit", lifecycle.Review)(rec.Transition(ctx, ref, s["alice"], lifecycle.Review, govern.EventOptions{}))

	_, err = rec.Decide(ctx, ref, s["bob"], lifecycle.Approve, govern.ApprovalOptions{})
	if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "bob") || !strings.Contains(err.Error(), "bob2") {
		t.Fatalf("govern with a key under two names: %v", err)
	}
	if n, _ := e.stored(subj); n != 1 {
		t.Fatalf("%d statements stored, want the submission only", n)
	}
	e.attestApproval(subj, "bob", lifecycle.Approval{Workflow: subj.Digest.String(), Request: sub.ID, Decision: lifecycle.Approve, Time: time.Now().UTC()})
	st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref)
	if err == nil && st.State == lifecycle.Approved {
		t.Fatalf("one key approved as two signers: %+v", st.Round)
	}
	if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), `"bob" and "bob2"`) {
		t.Fatalf("Lifecycle: %v", err)
	}
}
