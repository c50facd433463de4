package govern_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// chain3 records review, publication and deprecation of a new version at
// ref under a policy that needs no approvals, signed by alice, and
// returns the version and the three event IDs.
func chain3(t *testing.T, e *env, ref string) (accessory.Subject, []string) {
	t.Helper()
	ctx := context.Background()
	subj := e.push(ref, nil)
	rec := e.recorder(verify.Options{})
	a := keys.signer["alice"]
	ids := []string{must(t, "submit", lifecycle.Approved)(rec.Transition(ctx, ref, a, lifecycle.Review, govern.EventOptions{})).ID}
	e.sign(subj)
	ids = append(ids, must(t, "publish", lifecycle.Published)(rec.Transition(ctx, ref, a, lifecycle.Published, govern.EventOptions{})).ID)
	ids = append(ids, must(t, "deprecate", lifecycle.Deprecated)(rec.Transition(ctx, ref, a, lifecycle.Deprecated, govern.EventOptions{Reason: "old"})).ID)
	return subj, ids
}

// lifecycleFailure checks that Verify failed the lifecycle check with an
// error that is (errors.As) target.
func lifecycleFailure(t *testing.T, err error, rep *verify.Report, target any) {
	t.Helper()
	var f *verify.Failure
	if !errors.As(err, &f) || f.Check != verify.CheckLifecycle || rep.Failed() == nil || rep.Failed().Name != verify.CheckLifecycle {
		t.Fatalf("Verify: %v, want a lifecycle check failure", err)
	}
	if !errors.As(err, target) || !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("Verify: %v is not a %T", err, target)
	}
}

// A registry that allows deletes can hide events. A verifier that saw
// the whole chain notices the newest one missing (a rollback); any
// verifier notices a missing middle one (a broken link).
func TestDeletedEvents(t *testing.T) {
	ctx := context.Background()
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			e := plain(t, lifecycle.Roles{}, accessory.RegistryOptions{Mode: mode})

			t.Run("newest", func(t *testing.T) {
				ref := e.host + "/wf/newest:1.4.0"
				subj, ids := chain3(t, e, ref)
				store := lifecycle.NewMemoryStore()
				v := e.verifier(verify.Options{StateStore: store})
				if st, err := v.Lifecycle(ctx, ref); err != nil || st.State != lifecycle.Deprecated {
					t.Fatalf("before: %v %+v", err, st)
				}
				key, err := v.StateKey(ctx, ref)
				if err != nil {
					t.Fatal(err)
				}
				if h, ok, _ := store.Load(ctx, key); !ok || h.Sequence != 3 || h.ID != ids[2] {
					t.Fatalf("store %+v %v", h, ok)
				}
				e.drop(subj, ids[2])
				// Without the store, the shorter chain is all there is.
				if st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref); err != nil || st.State != lifecycle.Published {
					t.Fatalf("without a store: %v %+v", err, st)
				}
				st, err := v.Lifecycle(ctx, ref)
				var rb *lifecycle.RollbackError
				if !errors.As(err, &rb) || rb.Seen.ID != ids[2] || rb.Served.Sequence != 2 || rb.Different || !strings.Contains(err.Error(), ids[2]) {
					t.Fatalf("Lifecycle: %v", err)
				}
				if st == nil || st.Status == nil || st.State != lifecycle.Published {
					t.Fatalf("status with the error: %+v", st)
				}
				_, rep, err := v.Verify(ctx, ref)
				lifecycleFailure(t, err, rep, &rb)
				// The store still holds the head it saw.
				if h, _, _ := store.Load(ctx, key); h.Sequence != 3 {
					t.Fatalf("store rolled back to %+v", h)
				}
				// Nor can govern write on the rolled-back chain.
				rec, _ := govern.New(v, e.reg, govern.Options{})
				if _, err := rec.Transition(ctx, ref, keys.signer["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "again"}); !errors.As(err, &rb) {
					t.Fatalf("govern on a rolled-back chain: %v", err)
				}
				// Another third event in its place: the history was rewritten.
				other := e.attestEvent(subj, "alice", lifecycle.Event{Workflow: subj.Digest.String(), State: lifecycle.Retired, Previous: ids[1], Sequence: 3,
					Time: time.Now().UTC().Add(time.Minute), Reason: "rewritten"})
				if _, err := v.Lifecycle(ctx, ref); !errors.As(err, &rb) || !rb.Different || rb.Served.ID != other || !strings.Contains(err.Error(), "rewrote history") {
					t.Fatalf("rewritten history: %v", err)
				}
			})

			t.Run("middle", func(t *testing.T) {
				ref := e.host + "/wf/middle:1.4.0"
				subj, ids := chain3(t, e, ref)
				e.drop(subj, ids[1])
				v := e.verifier(verify.Options{StateStore: lifecycle.NewMemoryStore()})
				_, err := v.Lifecycle(ctx, ref)
				var ce *lifecycle.ChainError
				if !errors.As(err, &ce) || ce.Problem != "broken link" || !slices.Contains(ce.IDs, ids[2]) {
					t.Fatalf("Lifecycle: %v", err)
				}
				_, rep, err := v.Verify(ctx, ref)
				lifecycleFailure(t, err, rep, &ce)
			})
		})
	}
}

// Two events by allowed signers claiming one predecessor fork the chain:
// it fails closed.
func TestForkedEvents(t *testing.T) {
	ctx := context.Background()
	e := plain(t, lifecycle.Roles{}, accessory.RegistryOptions{})
	ref := e.host + "/wf/fork:1.4.0"
	subj, ids := chain3(t, e, ref)
	now := time.Now().UTC().Truncate(time.Second).Add(time.Minute)
	d := subj.Digest.String()
	retire := e.attestEvent(subj, "alice", lifecycle.Event{Workflow: d, State: lifecycle.Retired, Previous: ids[1], Sequence: 3, Time: now, Reason: "a"})
	st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref)
	var ce *lifecycle.ChainError
	if !errors.As(err, &ce) || ce.Problem != "fork" || !slices.Contains(ce.IDs, retire) || !slices.Contains(ce.IDs, ids[2]) {
		t.Fatalf("Lifecycle: %v", err)
	}
	if st == nil {
		t.Fatal("no status with the error")
	}
	_, rep, err := e.verifier(verify.Options{}).Verify(ctx, ref)
	lifecycleFailure(t, err, rep, &ce)

	// Two first links.
	ref = e.host + "/wf/fork2:1.4.0"
	subj = e.push(ref, nil)
	e.sign(subj)
	e.attestEvent(subj, "alice", lifecycle.Event{Workflow: d, State: lifecycle.Published, Sequence: 1, Time: now})
	e.attestEvent(subj, "alice", lifecycle.Event{Workflow: d, State: lifecycle.Published, Sequence: 1, Time: now.Add(time.Second)})
	if _, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref); !errors.As(err, &ce) || ce.Problem != "fork" {
		t.Fatalf("two first links: %v", err)
	}
}

// An outsider cannot retire a version: a retirement by a key the policy
// does not know, or by a trusted signer without the retire role, is
// ignored and reported; the version stays as it was and verifies.
func TestOutsiderRetirement(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		who, warning string
	}{
		{"mallory", "not signed by a signer trusted for"},
		{"bob", "signed by bob, who may not record retired (allowed: alice)"},
	} {
		t.Run(tc.who, func(t *testing.T) {
			e := plain(t, lifecycle.Roles{}, accessory.RegistryOptions{})
			ref := e.host + "/wf/outsider:1.4.0"
			subj, ids := chain3(t, e, ref)
			e.attestEvent(subj, tc.who, lifecycle.Event{Workflow: subj.Digest.String(), State: lifecycle.Retired, Previous: ids[2], Sequence: 4,
				Time: time.Now().UTC().Add(time.Minute), Reason: "pwned", Actor: "alice"})
			st, err := e.verifier(verify.Options{}).Lifecycle(ctx, ref)
			if err != nil || st.State != lifecycle.Deprecated || len(st.Chain) != 3 {
				t.Fatalf("Lifecycle: %v %+v", err, st)
			}
			if !slices.ContainsFunc(st.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Fatalf("warnings %q, want one mentioning %q", st.Warnings, tc.warning)
			}
			_, rep, err := e.verifier(verify.Options{}).Verify(ctx, ref)
			if err != nil || !rep.Verified || rep.Lifecycle.State != lifecycle.Deprecated ||
				!slices.ContainsFunc(rep.Warnings, func(w string) bool { return strings.Contains(w, tc.warning) }) {
				t.Fatalf("Verify: %v %+v", err, rep)
			}
		})
	}
}

// Events and approvals name only the digest in their predicate, but
// their statement's subject names the repository they were recorded
// for. The same content in two repositories has two chains: an event of
// one copied onto the other by someone with push access but no key (on
// the append-only registry extension, for good) is ignored and reported,
// as a signature replayed across repositories is, instead of forking or
// breaking the other chain.
func TestReplayedAcrossRepositories(t *testing.T) {
	ctx := context.Background()
	e := extension(t, lifecycle.Roles{}, accessory.RegistryOptions{})
	x, y := e.host+"/wf/x:1.4.0", e.host+"/wf/y:1.4.0"
	sx, ids := chain3(t, e, x)
	sy := e.push(y, nil)
	if sx.Digest != sy.Digest {
		t.Fatalf("digests %s and %s, want one content in two repositories", sx.Digest, sy.Digest)
	}
	e.sign(sy)
	own := e.attestEvent(sy, "alice", lifecycle.Event{Workflow: sy.Digest.String(), State: lifecycle.Published, Sequence: 1,
		Time: time.Now().UTC().Truncate(time.Second).Add(time.Minute)})
	v := e.verifier(verify.Options{})
	if st, err := v.Lifecycle(ctx, y); err != nil || st.State != lifecycle.Published || len(st.Chain) != 1 || st.Chain[0].ID != own {
		t.Fatalf("before: %v %+v", err, st)
	}
	// x's first link (a second first link in y: a fork) and its third
	// (whose predecessor y lacks: a broken link).
	e.copyToAttTag(sx, sy, ids[0])
	e.copyToAttTag(sx, sy, ids[2])
	for _, v := range []*verify.Verifier{v, e.verifier(verify.Options{StateStore: lifecycle.NewMemoryStore()})} {
		st, err := v.Lifecycle(ctx, y)
		if err != nil || st.State != lifecycle.Published || len(st.Chain) != 1 || st.Chain[0].ID != own {
			t.Fatalf("after the replay: %v %+v", err, st)
		}
		n := 0
		for _, w := range st.Warnings {
			if strings.Contains(w, "names another repository") && strings.Contains(w, sx.Repository) {
				n++
			}
		}
		if n != 2 {
			t.Fatalf("warnings %q, want two naming the replay from %s", st.Warnings, sx.Repository)
		}
		_, rep, err := v.Verify(ctx, y)
		if err != nil || !rep.Verified || rep.Lifecycle.State != lifecycle.Published {
			t.Fatalf("Verify after the replay: %v %+v", err, rep)
		}
	}
	// A registry's pull rule asks under its own address, not the name the
	// events were recorded under: they count, the replayed ones do not.
	_, port, _ := strings.Cut(e.host, ":")
	anyHost := *e.pol
	anyHost.TrustPolicies = slices.Clone(e.pol.TrustPolicies)
	anyHost.TrustPolicies[0].RegistryScopes = []string{"*"}
	rv, err := verify.New(&anyHost, e.o, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for ref, want := range map[string]lifecycle.State{"wf/x": lifecycle.Deprecated, "wf/y": lifecycle.Published} {
		if got, err := rv.StateOf("localhost:"+port)(ctx, ref, sy.Digest); err != nil || got != want {
			t.Fatalf("StateOf %s: %s %v, want %s", ref, got, err, want)
		}
	}
	// x itself is untouched, and govern goes on writing y's own chain.
	if st, err := v.Lifecycle(ctx, x); err != nil || st.State != lifecycle.Deprecated {
		t.Fatalf("x: %v %+v", err, st)
	}
	rec := e.recorder(verify.Options{})
	must(t, "deprecate y", lifecycle.Deprecated)(rec.Transition(ctx, y, keys.signer["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "y's own"}))
}
