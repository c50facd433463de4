package publish

import (
	"context"
	"fmt"
	"sync"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// Item is one workflow of a bulk publication: its compiled Build, the
// target it is published to and the options of its own ceremony (its tag,
// provenance, lifecycle gate).
type Item struct {
	Target  *target.Target
	Build   *ociwf.Build
	Options Options
}

// ItemResult is the outcome of one Item: its Result, or the error that
// stopped its ceremony (its tag untouched).
type ItemResult struct {
	Result *Result
	Err    error
}

// DefaultConcurrency is how many ceremonies PublishAll runs at once when
// asked for none.
const DefaultConcurrency = 4

// AllOptions tune PublishAll.
type AllOptions struct {
	// Concurrency bounds the ceremonies run at once; 0 means
	// DefaultConcurrency.
	Concurrency int
	// Progress, if set, is called once for every item, when its ceremony
	// ends, with the number of items done, the total, the item's index
	// and its result. Calls are serialised, in the order the items finish
	// (done counts from 1 to total).
	Progress func(done, total, i int, r ItemResult)
}

// PublishAll runs the publication ceremony of Publish for every item, up
// to opts.Concurrency at once, all signing with the one key signer gives:
// a key that Load loads is loaded (decrypted) once and closed when every
// ceremony is done. Each item's write-once tag is applied last for that
// item, so an item that fails leaves its tag untouched and no other item
// half-published; rerunning the same PublishAll writes nothing new for
// the items completed. The results are in the order of items. Items must
// already be compiled: PublishAll uploads nothing that was not.
//
// The accessory.Signer is shared by every ceremony at once; its signing
// key (sigstore's SignerVerifier) is safe for concurrent use, as Publish
// already relies on when it signs and attests at once.
func PublishAll(ctx context.Context, items []Item, reg *accessory.Registry, signer Signer, opts AllOptions) []ItemResult {
	out := make([]ItemResult, len(items))
	var mu sync.Mutex // serialises opts.Progress
	done := 0
	report := func(i int) {
		if opts.Progress == nil {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		done++
		opts.Progress(done, len(items), i, out[i])
	}
	failAll := func(err error) []ItemResult {
		for i := range out {
			out[i].Err = err
			report(i)
		}
		return out
	}
	if reg == nil || (signer.key == nil && signer.load == nil) {
		return failAll(fmt.Errorf("publish: a registry and a signer are required: %w", errdef.ErrInvalid))
	}
	key := signer.key
	if signer.load != nil {
		s, err := signer.load(ctx)
		if err != nil {
			return failAll(fmt.Errorf("publish: %w", err))
		}
		if s != nil {
			defer s.Close()
		}
		key = s
	}
	concurrency := opts.Concurrency
	if concurrency < 1 {
		concurrency = DefaultConcurrency
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, it := range items {
		if it.Target == nil || it.Build == nil {
			out[i].Err = fmt.Errorf("publish: item %d has no target or build: %w", i, errdef.ErrInvalid)
			report(i)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer report(i)
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				out[i].Err = fmt.Errorf("publish %s: %w", it.Target.Name, ctx.Err())
				return
			}
			defer func() { <-sem }()
			out[i].Result, out[i].Err = Publish(ctx, it.Target, it.Build, reg, Key(key), it.Options)
		}()
	}
	wg.Wait()
	return out
}
