// Package publish runs the publication ceremony of a workflow in one call:
// push the artifact by digest, sign it, attest its SLSA v1 provenance and
// its CycloneDX SBOM, and only then apply the write-once tag.
//
// A failure at any step leaves the tag where it was (absent, or on the
// same digest), so no tag ever names a half-published artifact; the blobs,
// signature and attestations already stored are harmless and are reused by
// the next attempt. Rerunning a publish is idempotent: the same key's
// signature and attestations are recognised and not written twice.
package publish

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// Signer gives Publish its key: Key for a loaded one, Load for one that
// loads while the artifact is compiled and pushed.
type Signer struct {
	key  *accessory.Signer
	load func(context.Context) (*accessory.Signer, error) // set by Load
}

// Key returns the Signer for s, already loaded; the caller closes s.
func Key(s *accessory.Signer) Signer { return Signer{key: s} }

// Load starts load now, in the background, so that a slow key (an
// scrypt-encrypted file, a KMS round trip) adds no wall time: programs
// call it before compiling. Publish waits for the result when it signs,
// and closes what was loaded; a load failure fails the publish before the
// tag is applied.
func Load(ctx context.Context, load func(context.Context) (*accessory.Signer, error)) Signer {
	done := make(chan struct{})
	var s *accessory.Signer
	var err error
	go func() {
		defer close(done)
		s, err = load(ctx)
	}()
	return Signer{load: func(ctx context.Context) (*accessory.Signer, error) {
		select {
		case <-done:
			return s, err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}}
}

// Options tune Publish. The zero value publishes by digest only, with
// the registry's clock and no logging.
type Options struct {
	// Tag is the write-once version tag; empty publishes by digest only.
	Tag string
	// Pack sets the artifact's created time, source and annotations.
	Pack ociwf.PackOptions
	// Provenance describes the builder and source; its timestamps are set
	// by Publish.
	Provenance provenance.Options
	// Annotations are signed with the signature (the tag is added).
	Annotations map[string]string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Now is the clock for provenance timestamps; nil means time.Now.
	Now func() time.Time
}

// Step is one completed step of the ceremony.
type Step struct {
	Name     string        `json:"name"`
	Existing bool          `json:"existing,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// Result is a completed publication.
type Result struct {
	// Reference is REPOSITORY@sha256:..., what runtimes should pin.
	Reference  string             `json:"reference"`
	Descriptor ocispec.Descriptor `json:"descriptor"`
	Tag        string             `json:"tag,omitempty"`
	Mode       accessory.Mode     `json:"storage"`
	Format     accessory.Format   `json:"signatureFormat"`
	Steps      []Step             `json:"steps"`
}

// Publish runs the ceremony for b on dst (a registry target), storing the
// signature and attestations in reg and signing with signer.
func Publish(ctx context.Context, dst *target.Target, b *ociwf.Build, reg *accessory.Registry, signer Signer, opts Options) (*Result, error) {
	if reg == nil || (signer.key == nil && signer.load == nil) {
		return nil, fmt.Errorf("publish: a registry and a signer are required: %w", errdef.ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	res := &Result{Tag: opts.Tag, Mode: reg.Mode(), Format: reg.Format()}
	started := now()
	mark := started
	var mu sync.Mutex
	step := func(name string, existing bool, since time.Time) {
		t := now()
		mu.Lock()
		defer mu.Unlock()
		res.Steps = append(res.Steps, Step{Name: name, Existing: existing, Duration: t.Sub(since)})
		log.Info(name, "existing", existing, "duration", t.Sub(since))
	}

	key := func(context.Context) (*accessory.Signer, error) { return signer.key, nil }
	if signer.load != nil {
		key = signer.load
		defer func() {
			go func() { // close what was loaded, without waiting for a slow load
				if s, err := key(context.WithoutCancel(ctx)); err == nil && s != nil {
					s.Close()
				}
			}()
		}()
	}

	ceremony := func(ctx context.Context, desc ocispec.Descriptor) error {
		step("push", false, mark)
		pushed := now()
		subj := accessory.NewSubject(target.Ref{Name: dst.Name, Reference: opts.Tag}, desc.Digest)
		// Read what a previous run stored while the key may still be
		// loading; Sign and AttestAll then skip that round trip.
		pre, err := reg.Prefetch(ctx, subj)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		s, err := key(ctx)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		log.Debug("signer ready", "waited", now().Sub(pushed))

		po := opts.Provenance
		po.StartedOn, po.FinishedOn = started, pushed
		pred, err := provenance.Generate(b, po)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		raw, err := provenance.Marshal(pred)
		if err != nil {
			return fmt.Errorf("publish %s: provenance: %w", subj, err)
		}

		sign := func(ctx context.Context) error {
			t := now()
			r, err := reg.Sign(ctx, s, subj, accessory.SignOptions{Annotations: opts.Annotations, Stored: pre})
			if err != nil {
				return fmt.Errorf("publish %s: sign: %w", subj, err)
			}
			step("sign", r.Existing, t)
			return nil
		}
		attestBoth := func(ctx context.Context) error {
			t := now()
			rs, err := reg.AttestAll(ctx, s, subj, []accessory.AttestOptions{
				{Type: provenance.PredicateType, Predicate: raw},
				{Type: accessory.TypeCycloneDX, Predicate: b.SBOM},
			}, pre)
			if err != nil {
				return fmt.Errorf("publish %s: attest provenance and SBOM: %w", subj, err)
			}
			step("attest-provenance", rs[0].Existing, t)
			step("attest-sbom", rs[1].Existing, t)
			return nil
		}
		if reg.Mode() == accessory.Referrers || reg.Format() != accessory.FormatLegacy {
			// Referrers, and bundles whatever the mode: without a
			// referrers API, both writes update one fallback index tag;
			// in sequence neither loses the other's entry.
			if err := sign(ctx); err != nil {
				return err
			}
			return attestBoth(ctx)
		}
		// The signature and the attestations live under different tags.
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sign(gctx) })
		g.Go(func() error { return attestBoth(gctx) })
		return g.Wait()
	}

	desc, err := ociwf.Push(ctx, dst.Storage, b, opts.Tag, ociwf.PushOptions{
		PackOptions: opts.Pack,
		Logger:      log,
		BeforeTag: func(ctx context.Context, desc ocispec.Descriptor) error {
			err := ceremony(ctx, desc)
			mark = now()
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if opts.Tag != "" {
		step("tag", false, mark)
	}
	slices.SortStableFunc(res.Steps, func(a, b Step) int { return order(a.Name) - order(b.Name) })
	res.Descriptor = desc
	res.Reference = dst.Pinned(desc.Digest)
	return res, nil
}

// order ranks steps as the ceremony defines them; sign and attest run
// concurrently and finish in any order.
func order(step string) int {
	return slices.Index([]string{"push", "sign", "attest-provenance", "attest-sbom", "tag"}, step)
}
