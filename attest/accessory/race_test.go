package accessory_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/policy/registrytest"
)

// Signers racing for one version's append-only signature and attestation
// tags (approvers signing at once, or CI jobs publishing the same version)
// all succeed, and the tags end with each one's signature and attestation
// once: a refused write reads again, finds what the racers stored and
// appends to it, as often as racers keep it refused.
func TestRacingSignersOnAnAppendOnlyRegistry(t *testing.T) {
	host := registrytest.New(t)
	o := attesttest.Opener(t)
	_, subj := attesttest.Push(t, o, host+"/wf/race:1.4.0", "build-test-release.yaml")
	const racers = 12
	dir := t.TempDir()
	signers := make([]*accessory.Signer, 2*racers)
	for i := range racers {
		key, _ := attesttest.KeyPair(t, dir, fmt.Sprint("k", i))
		signers[i] = attesttest.Signer(t, key)
		signers[racers+i] = signers[i] // each signer races itself too
	}
	var wg sync.WaitGroup
	errs := make([]error, len(signers))
	for i, s := range signers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
			ctx := context.Background()
			if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{}); err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: "https://example.com/race/v1", Predicate: []byte(`{"race":true}`)})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("racer %d: %v", i, err)
		}
	}
	found, err := accessory.NewRegistry(o, accessory.RegistryOptions{}).Find(context.Background(), subj)
	if err != nil {
		t.Fatal(err)
	}
	if n, m := len(found.Signatures), len(found.Attestations); n != racers || m != racers {
		t.Fatalf("%d signatures and %d attestations after %d signers raced twice each, want %d of each", n, m, racers, racers)
	}
}
