package publish_test

import (
	"context"
	"errors"
	"slices"
	"sync/atomic"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/keys"
	"ociwf.dev/attest/publish"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/registrytest"
)

// A bulk publication decrypts the key once, publishes every item
// concurrently, and an item whose tag already names other content fails
// alone (ErrImmutable) with the others published; a rerun writes nothing
// new. Progress is told of every item once, in order of completion.
func TestPublishAll(t *testing.T) {
	key, pub := attesttest.KeyPair(t, t.TempDir(), "k")
	f := fixture{o: attesttest.Opener(t), pub: pub}
	host := registrytest.New(t)
	ctx := context.Background()
	samples := []string{"build-test-release.yaml", "fan-out-fan-in.yaml", "fan-out-fan-in.yaml"}
	// The third item's tag already names other content.
	taken := host + "/bulk/" + "taken:1.0.0"
	attesttest.Push(t, f.o, taken, "build-test-release.yaml")
	var items []publish.Item
	for i, s := range samples {
		ref := host + "/bulk/" + s[:len(s)-len(".yaml")] + ":1.0.0"
		if i == 2 {
			ref = taken
		}
		dst, err := f.o.Open(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, publish.Item{Target: dst, Build: attesttest.Sample(t, s), Options: publish.Options{Tag: dst.Reference}})
	}
	reg := accessory.NewRegistry(f.o, accessory.RegistryOptions{})
	for run := range 2 {
		var passes atomic.Int32
		signer := publish.Load(ctx, func(ctx context.Context) (*accessory.Signer, error) {
			return keys.LoadSigner(ctx, accessory.SignerOptions{Key: key, Pass: func(b bool) ([]byte, error) {
				passes.Add(1)
				return attesttest.Pass(b)
			}})
		})
		var calls []int // item indexes, in the order reported
		progress := func(done, total, i int, r publish.ItemResult) {
			calls = append(calls, i)
			if done != len(calls) || total != len(items) {
				t.Errorf("run %d: progress(%d, %d) after %d items", run, done, total, len(calls)-1)
			}
			if (r.Err != nil) != (i == 2) {
				t.Errorf("run %d: progress of item %d: error %v", run, i, r.Err)
			}
		}
		res := publish.PublishAll(ctx, items, reg, signer, publish.AllOptions{Concurrency: 2, Progress: progress})
		slices.Sort(calls)
		if !slices.Equal(calls, []int{0, 1, 2}) {
			t.Errorf("run %d: progress reported items %v, want each once", run, calls)
		}
		if n := passes.Load(); n != 1 {
			t.Errorf("run %d: the key's passphrase was asked for %d times, want 1", run, n)
		}
		for i, r := range res[:2] {
			if r.Err != nil {
				t.Fatalf("run %d item %d: %v", run, i, r.Err)
			}
			if _, err := f.verify(t, subjectOf(r.Result, items[i].Target.Name)); err != nil {
				t.Fatalf("run %d item %d: verify: %v", run, i, err)
			}
			for _, st := range r.Result.Steps {
				if run == 1 && (st.Name == "sign" || st.Name == "attest-provenance" || st.Name == "attest-sbom") && !st.Existing {
					t.Errorf("rerun item %d: step %s wrote again", i, st.Name)
				}
			}
		}
		if err := res[2].Err; !errors.Is(err, errdef.ErrImmutable) {
			t.Fatalf("run %d: the item whose tag names other content: %v, want ErrImmutable", run, err)
		}
	}
}
