package mirror

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// AllOptions tune CopyAll.
type AllOptions struct {
	// Concurrency bounds the versions copied at once (default 4).
	Concurrency int
	// Copy are the options of each version's copy; its Tag is ignored
	// (each version keeps its tag).
	Copy Options
	// Progress, when set, is called after each version with the number
	// done, the total, the version's tag and the error that stopped its
	// copy (nil when it copied). Calls are serialised, in the order the
	// versions finish (done counts from 1 to total).
	Progress func(done, total int, tag string, err error)
}

// Summary is what CopyAll did.
type Summary struct {
	// Versions are the results of the versions copied, by tag order.
	Versions []*Result `json:"versions"`
	// Failed names the tags that did not copy, with why.
	Failed map[string]string `json:"failed,omitempty"`
}

// Totals adds up the results: manifests, blobs and bytes written, and
// content skipped.
func (s *Summary) Totals() (manifests, blobs int, bytes int64, skipped int) {
	for _, r := range s.Versions {
		manifests += r.Manifests
		blobs += r.Blobs
		bytes += r.Bytes
		skipped += r.Skipped
	}
	return
}

// CopyAll copies every version of src, each tag that is not an accessory
// tag, to dst with Copy, opts.Concurrency at once; each version keeps its
// tag. A version that fails does not stop the others: the error joins
// every failure (each naming its tag) and Summary.Failed lists them.
func CopyAll(ctx context.Context, src oras.ReadOnlyGraphTarget, dst oras.GraphTarget, opts AllOptions) (*Summary, error) {
	tl, ok := src.(registry.TagLister)
	if !ok {
		return nil, fmt.Errorf("the source cannot list its tags: %w", errdef.ErrInvalid)
	}
	var tags []string
	err := tl.Tags(ctx, "", func(page []string) error {
		for _, t := range page {
			if !IsVersionTag(t) {
				continue
			}
			if len(tags) == MaxVersions {
				return fmt.Errorf("more than %d version tags; copy the versions one by one: %w", MaxVersions, errdef.ErrTooLarge)
			}
			tags = append(tags, t)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list the source's tags: %w", target.ListingError(err))
	}
	slices.Sort(tags)
	n := opts.Concurrency
	if n < 1 {
		n = 4
	}
	sum := &Summary{Versions: make([]*Result, len(tags)), Failed: map[string]string{}}
	errs := make([]error, len(tags))
	var mu sync.Mutex
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for i, tag := range tags {
		g.Go(func() error {
			o := opts.Copy
			o.Tag = tag
			res, err := Copy(gctx, src, tag, dst, o)
			mu.Lock()
			defer mu.Unlock()
			sum.Versions[i] = res
			if err != nil {
				errs[i] = fmt.Errorf("version %s: %w", tag, err)
				sum.Failed[tag] = err.Error()
			}
			done++
			if opts.Progress != nil {
				opts.Progress(done, len(tags), tag, err)
			}
			return ctx.Err() // a cancelled copy stops; a failed version does not
		})
	}
	if err := g.Wait(); err != nil {
		return sum, err
	}
	sum.Versions = slices.DeleteFunc(sum.Versions, func(r *Result) bool { return r == nil })
	if len(sum.Failed) == 0 {
		sum.Failed = nil
	}
	return sum, errors.Join(errs...)
}
