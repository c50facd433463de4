package govern_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/policy/lifecycle"
)

// Eight calls deprecating one version at once with one key (a CI job run
// several times at once), each with its own clock, record one
// deprecation: the others find it before writing, or on the re-read after
// their append was refused, and say Existing. Without that the chain
// forks and the version fails verification for good.
func TestRacingTransitionsRecordOneEvent(t *testing.T) {
	ctx := context.Background()
	e := extension(t, lifecycle.Roles{}, accessory.RegistryOptions{})
	ref := e.host + "/wf/release:1.4.0"
	subj := e.push(ref, nil)
	e.sign(subj)
	const racers = 8
	results := make([]*govern.Result, racers)
	errs := make([]error, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		at := time.Date(2026, 12, 2, 12, 0, i, 0, time.UTC)
		rec, err := govern.New(e.verifier(verify.Options{StateStore: lifecycle.NewMemoryStore()}), e.reg, govern.Options{Now: func() time.Time { return at }})
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			<-start
			results[i], errs[i] = rec.Transition(ctx, ref, keys.signer["alice"], lifecycle.Deprecated, govern.EventOptions{Reason: "superseded"})
		})
	}
	close(start)
	wg.Wait()
	ids := map[string]bool{}
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
			continue
		}
		ids[results[i].ID] = true
	}
	st, err := e.verifier(verify.Options{StateStore: lifecycle.NewMemoryStore()}).Lifecycle(ctx, ref)
	if err != nil {
		t.Fatalf("the chain after %d racing deprecations: %v", racers, err)
	}
	if st.State != lifecycle.Deprecated || len(st.Chain) != 1 {
		t.Fatalf("state %s with %d events, want deprecated with one", st.State, len(st.Chain))
	}
	if len(ids) != 1 || !ids[st.Chain[0].ID] {
		t.Errorf("the racers name events %v, want only %s", ids, st.Chain[0].ID)
	}
}
