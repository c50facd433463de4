package verify

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
)

// AllOptions tune VerifyAll.
type AllOptions struct {
	// Concurrency bounds the versions verified at once; 0 means 8.
	Concurrency int
	// Progress, if set, is called after each version with the number done,
	// the total and the version's outcome. Calls are serialised, in the
	// order the versions finish (done counts from 1 to total), and hold up
	// the next version's report until they return.
	Progress func(done, total int, o Outcome)
}

// Outcome is one version's line in a Summary.
type Outcome struct {
	Tag      string        `json:"tag"`
	Digest   digest.Digest `json:"digest,omitempty"`
	Verified bool          `json:"verified"`
	// Skipped is true when the version's trust policy scope skips
	// verification.
	Skipped bool `json:"skipped,omitempty"`
	// Check is the failed check, if one failed.
	Check string `json:"check,omitempty"`
	// Error says what failed.
	Error    string   `json:"error,omitempty"`
	Warnings []string `json:"warnings,omitempty"`
	Requests int64    `json:"requests"`
}

// Summary is the outcome of VerifyAll.
type Summary struct {
	Repository string `json:"repository"`
	Versions   int    `json:"versions"`
	Verified   int    `json:"verified"`
	// Failed counts versions that failed a check or, without
	// Options.AllowSkipped, were refused because their scope skips
	// verification; Skipped counts the versions in such scopes; Errors,
	// versions that could not be verified at all (an unreachable
	// registry, a tag deleted meanwhile).
	Failed            int           `json:"failed"`
	Skipped           int           `json:"skipped"`
	Errors            int           `json:"errors"`
	Requests          int64         `json:"requests"`
	Duration          time.Duration `json:"durationNanos"`
	VersionsPerSecond float64       `json:"versionsPerSecond"`
	Outcomes          []Outcome     `json:"outcomes"`
}

// VerifyAll verifies every tagged version of repo (registry/repository)
// concurrently. Versions that fail are reported in the summary, not as an
// error; the error is for a repository whose tags cannot be listed.
func (v *Verifier) VerifyAll(ctx context.Context, repo string, opts AllOptions) (*Summary, error) {
	start := time.Now()
	tgt, err := v.opener.Open(ctx, repo)
	if err != nil {
		return nil, err
	}
	if tgt.Reference != "" {
		return nil, fmt.Errorf("verify every version of %s: name a repository, without a tag or digest: %w", repo, errdef.ErrInvalidReference)
	}
	lister, ok := tgt.Storage.(registry.TagLister)
	if !ok {
		return nil, fmt.Errorf("verify every version of %s: the target cannot list tags: %w", repo, errdef.ErrInvalid)
	}
	var tags []string
	if err := lister.Tags(ctx, "", func(page []string) error {
		for _, t := range page {
			// cosign's and the referrers fallback's tags are not versions.
			if immutability.IsAccessoryTag(t) {
				continue
			}
			if len(tags) == DefaultMaxVersions {
				return fmt.Errorf("more than %d version tags; verify the versions one by one: %w", DefaultMaxVersions, errdef.ErrTooLarge)
			}
			tags = append(tags, t)
		}
		return nil
	}); err != nil {
		return nil, fmt.Errorf("list tags of %s: %w", repo, target.ListingError(err))
	}
	n := opts.Concurrency
	if n <= 0 {
		n = 8
	}
	sum := &Summary{Repository: tgt.Name, Versions: len(tags), Outcomes: make([]Outcome, len(tags))}
	var mu sync.Mutex // serialises Progress
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for i, tag := range tags {
		g.Go(func() error {
			_, rep, err := v.Verify(gctx, tgt.Name+":"+tag)
			out := Outcome{Tag: tag}
			if rep != nil {
				out.Digest, out.Verified, out.Skipped, out.Warnings, out.Requests = rep.Digest, rep.Verified, rep.Skipped, rep.Warnings, rep.Requests
			}
			if err != nil {
				out.Error = err.Error()
				var f *Failure
				if errors.As(err, &f) {
					out.Check = f.Check
				}
			}
			sum.Outcomes[i] = out
			if opts.Progress != nil {
				mu.Lock()
				done++
				opts.Progress(done, len(tags), out)
				mu.Unlock()
			}
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for _, o := range sum.Outcomes {
		sum.Requests += o.Requests
		if o.Skipped {
			sum.Skipped++
		}
		switch {
		case o.Verified:
			sum.Verified++
		case o.Skipped && o.Error == "":
			// Accepted unverified (Options.AllowSkipped): counted in
			// Skipped only.
		case o.Check != "" || o.Skipped:
			sum.Failed++
		default:
			sum.Errors++
		}
	}
	sum.Duration = time.Since(start)
	if s := sum.Duration.Seconds(); s > 0 {
		sum.VersionsPerSecond = float64(len(tags)) / s
	}
	return sum, nil
}
