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

// PublishAll runs the publication ceremony of Publish for every item, up
// to concurrency (DefaultConcurrency when < 1) at once, all signing with
// the one key signer gives: a key that Load loads is loaded (decrypted)
// once and closed when every ceremony is done. Each item's write-once tag
// is applied last for that item, so an item that fails leaves its tag
// untouched and no other item half-published; rerunning the same
// PublishAll writes nothing new for the items completed. The results are
// in the order of items. Items must already be compiled: PublishAll
// uploads nothing that was not.
//
// The accessory.Signer is shared by every ceremony at once; its signing
// key (sigstore's SignerVerifier) is safe for concurrent use, as Publish
// already relies on when it signs and attests at once.
func PublishAll(ctx context.Context, items []Item, reg *accessory.Registry, signer Signer, concurrency int) []ItemResult {
	out := make([]ItemResult, len(items))
	if reg == nil || (signer.key == nil && signer.load == nil) {
		for i := range out {
			out[i].Err = fmt.Errorf("publish: a registry and a signer are required: %w", errdef.ErrInvalid)
		}
		return out
	}
	key := signer.key
	if signer.load != nil {
		s, err := signer.load(ctx)
		if err != nil {
			for i := range out {
				out[i].Err = fmt.Errorf("publish: %w", err)
			}
			return out
		}
		if s != nil {
			defer s.Close()
		}
		key = s
	}
	if concurrency < 1 {
		concurrency = DefaultConcurrency
	}
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for i, it := range items {
		if it.Target == nil || it.Build == nil {
			out[i].Err = fmt.Errorf("publish: item %d has no target or build: %w", i, errdef.ErrInvalid)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
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
