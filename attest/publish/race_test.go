package publish_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// Publishers racing to publish the same version (CI jobs rerun at once),
// each with its own verifier and a clock seconds apart, record one
// publication event between them: the chain verifies, with no fork.
func TestRacingPublishersRecordOnePublication(t *testing.T) {
	f := newFixture(t)
	repo := registrytest.New(t) + "/team/race"
	pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
	_, subj := attesttest.Push(t, f.o, repo+":draft", "build-test-release.yaml")
	const racers = 8
	var wg sync.WaitGroup
	errs := make([]error, racers)
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v, err := verify.New(pol, f.o, verify.Options{StateStore: lifecycle.NewMemoryStore()})
			if err != nil {
				errs[i] = err
				return
			}
			at := time.Date(2026, 12, 1, 12, 0, i, 0, time.UTC)
			rec, err := govern.New(v, accessory.NewRegistry(f.o, accessory.RegistryOptions{}), govern.Options{Now: func() time.Time { return at }})
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = f.publishDigest(t, repo, subj.Digest, accessory.TagScheme, publish.Options{Tag: "1.4.0", Lifecycle: &publish.Lifecycle{Recorder: publish.Fixed(rec), Actor: "ci"}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("publisher %d: %v", i, err)
		}
	}
	v, err := verify.New(pol, f.o, verify.Options{StateStore: lifecycle.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Lifecycle(context.Background(), repo+":1.4.0")
	if err != nil {
		t.Fatalf("the chain after %d racing publishers: %v", racers, err)
	}
	if st.State != lifecycle.Published || len(st.Chain) != 1 {
		t.Fatalf("state %s, %d events", st.State, len(st.Chain))
	}
}
