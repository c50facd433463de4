// Package publish runs the publication ceremony of a workflow in one call:
// push the artifact by digest, sign it, attest its SLSA v1 provenance and
// its CycloneDX SBOM, and only then apply the write-once tag. Publish runs
// it for a freshly compiled Build; PublishDigest runs it for a version
// already stored by digest (a reviewed draft), reading it back, checked,
// without repacking it.
//
// A failure at any step leaves the tag where it was (absent, or on the
// same digest), so no tag ever names a half-published artifact; the blobs,
// signature and attestations already stored are harmless and are reused by
// the next attempt. Rerunning a publish is idempotent: the same key's
// signature and attestations are recognised and not written twice.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
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

// Options tune Publish and PublishDigest. The zero value publishes by
// digest only, with the registry's clock and no logging.
type Options struct {
	// Tag is the write-once version tag; empty publishes by digest only.
	Tag string
	// Pack sets the artifact's created time, source and annotations.
	// PublishDigest refuses it: stored content is never repacked.
	Pack ociwf.PackOptions
	// Provenance describes the builder and source; its timestamps are set
	// by Publish and PublishDigest.
	Provenance provenance.Options
	// Annotations are signed with the signature (the tag is added).
	Annotations map[string]string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Now is the clock for provenance timestamps and step durations; nil
	// means time.Now. Calls to it are serialised.
	Now func() time.Time

	// BeforeSign, if set, runs once the content is known (pushed by
	// Publish; read back and checked by PublishDigest) and before anything
	// is signed: an error stops the ceremony with nothing signed or
	// attested and the tag untouched. A gate that refuses to publish a
	// version (one without the required approvals, say) goes here.
	BeforeSign func(ctx context.Context, desc ocispec.Descriptor, b *ociwf.Build) error
	// BeforeTag, if set, runs after the signature and attestations are
	// stored and before the tag is applied, also when Tag is empty: an
	// error leaves the tag untouched. What must be recorded before a
	// version is published under its tag (a lifecycle event, say) goes
	// here. PublishDigest has checked the tag before signing; Publish
	// makes its second check of the tag while BeforeTag runs, so there
	// BeforeTag may run although another client took the tag meanwhile.
	BeforeTag func(ctx context.Context, desc ocispec.Descriptor) error

	// Lifecycle, if set, makes the publication a lifecycle transition:
	// refused before anything is signed when the version's verified
	// lifecycle does not allow it (missing approvals, a signer not
	// allowed to publish, a retired version) or when a uses: dependency
	// may not be referenced, and recorded as the chain's publication
	// event in the same write as the provenance and SBOM attestations.
	Lifecycle *Lifecycle
}

// Lifecycle is how a publication takes part in the lifecycle.
type Lifecycle struct {
	// Recorder returns the recorder that reads the version's chain under
	// its trust policy and refuses what would not count, given the
	// loaded signing key (a one-key policy is made from it); it is called
	// once, when the key is ready. Fixed is one for a recorder at hand.
	Recorder func(ctx context.Context, s *accessory.Signer) (*govern.Recorder, error)
	// Actor names the publisher in the publication event.
	Actor string
	// AllowDeprecated accepts deprecated uses: dependencies, with a
	// warning.
	AllowDeprecated bool
	// Supersedes, if set, is a version (a reference) this publication
	// replaces: once the new version is tagged, the old one is deprecated
	// with the new one, pinned by digest, as its replacement.
	Supersedes string
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
	// Event is the ID of the publication's lifecycle event, with
	// Options.Lifecycle.
	Event string `json:"lifecycleEvent,omitempty"`
	// Superseded is the deprecation of Options.Lifecycle.Supersedes.
	Superseded *govern.Result `json:"superseded,omitempty"`
	// Warnings are things the publisher must hear about: deprecated
	// dependencies allowed.
	Warnings []string `json:"warnings,omitempty"`
}

// Publish runs the ceremony for b on dst (a registry target), storing the
// signature and attestations in reg and signing with signer: push b by
// digest, BeforeSign, sign and attest, BeforeTag, then the tag.
func Publish(ctx context.Context, dst *target.Target, b *ociwf.Build, reg *accessory.Registry, signer Signer, opts Options) (*Result, error) {
	c, done, err := begin(ctx, reg, signer, opts)
	if err != nil {
		return nil, err
	}
	defer done()
	mark := c.started
	desc, err := ociwf.Push(ctx, dst.Storage, b, opts.Tag, ociwf.PushOptions{
		PackOptions: opts.Pack,
		Logger:      c.log,
		BeforeTag: func(ctx context.Context, desc ocispec.Descriptor) error {
			c.step("push", false, mark)
			err := c.seal(ctx, dst, desc, b)
			mark = c.now()
			return err
		},
	})
	if err != nil {
		return nil, err
	}
	if opts.Tag != "" {
		c.step("tag", false, mark)
	}
	res := c.result(dst, desc)
	return res, c.supersede(ctx, res)
}

// PublishDigest runs the ceremony for the workflow version already stored
// in dst's repository as manifest dgst (dst's own tag or digest is not
// used), without repacking it: the version published is exactly the one
// reviewed. It resolves dgst, reads the manifest, the config and the
// layers back with bounded, digest-checked reads (ociwf.ReadBuild), checks
// that the stored plan is what the stored source recompiles to
// (ociwf.Reproduce), refuses a tag taken by another digest, and then, as
// Publish does, runs BeforeSign, signs and attests, runs BeforeTag and
// applies the write-once tag last. A rerun writes nothing new.
//
// Content that is not an ociwf workflow fails with an error matching
// errdef.ErrNotWorkflow; content that fails its checks (a digest, a
// binding, a plan that does not recompile) matches errdef.ErrVerification;
// a tag that names another digest is an *ociwf.ImmutableError
// (errdef.ErrImmutable). In each case nothing is signed and the tag is
// untouched. opts.Pack must be zero.
func PublishDigest(ctx context.Context, dst *target.Target, dgst digest.Digest, reg *accessory.Registry, signer Signer, opts Options) (*Result, error) {
	pinned := dst.Pinned(dgst)
	if err := dgst.Validate(); err != nil {
		return nil, fmt.Errorf("publish %s: %v: %w", pinned, err, errdef.ErrInvalidReference)
	}
	if p := opts.Pack; !p.Created.IsZero() || p.Source != "" || p.Revision != "" || len(p.Annotations) > 0 {
		return nil, fmt.Errorf("publish %s: pack options do not apply to a version already stored (its content is published as it is): %w", pinned, errdef.ErrInvalid)
	}
	if opts.Tag != "" {
		if err := ociwf.ValidateTag(opts.Tag); err != nil {
			return nil, err
		}
	}
	c, done, err := begin(ctx, reg, signer, opts)
	if err != nil {
		return nil, err
	}
	defer done()
	_, desc, err := accessory.ResolveSubject(ctx, dst.Storage, target.Ref{Name: dst.Name, Reference: dgst.String()})
	if errors.Is(err, orasdef.ErrNotFound) {
		return nil, fmt.Errorf("publish %s: %s holds no manifest with this digest (push the workflow first): %w", pinned, dst.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("publish: %w", err)
	}
	_, b, err := ociwf.ReadBuild(ctx, dst.Storage, desc)
	if errors.Is(err, errdef.ErrNotWorkflow) {
		return nil, fmt.Errorf("publish %s: %w (name the digest of a workflow pushed with ociwf push)", pinned, err)
	}
	if err != nil {
		return nil, fmt.Errorf("publish %s: %w", pinned, err)
	}
	if err := ociwf.Reproduce(ctx, b.Source, b.PlanJSON, b.Plan); err != nil {
		return nil, fmt.Errorf("publish %s: refusing to sign a plan that its source does not compile to: %w", pinned, err)
	}
	tagged := false
	if opts.Tag != "" {
		if tagged, err = ociwf.CheckTag(ctx, dst.Storage, desc, opts.Tag); err != nil {
			return nil, fmt.Errorf("publish %s: %w", pinned, err)
		}
	}
	c.step("check", false, c.started)
	if err := c.seal(ctx, dst, desc, b); err != nil {
		return nil, err
	}
	if opts.Tag != "" {
		t := c.now()
		// TagOnce checks the tag again: another client may have taken it
		// while this one signed.
		if err := ociwf.TagOnce(ctx, dst.Storage, dst.Storage, desc, opts.Tag); err != nil {
			return nil, fmt.Errorf("publish %s: %w", pinned, err)
		}
		c.step("tag", tagged, t)
	}
	res := c.result(dst, desc)
	return res, c.supersede(ctx, res)
}

// ceremony is one run of the publication ceremony: its clock, its key and
// the steps completed.
type ceremony struct {
	reg     *accessory.Registry
	opts    Options
	log     *slog.Logger
	now     func() time.Time
	key     func(context.Context) (*accessory.Signer, error)
	started time.Time

	mu  sync.Mutex
	res *Result
	rec *govern.Recorder // the lifecycle recorder, once made
}

// begin starts a ceremony; done closes a key that Load loaded.
func begin(ctx context.Context, reg *accessory.Registry, signer Signer, opts Options) (c *ceremony, done func(), err error) {
	if reg == nil || (signer.key == nil && signer.load == nil) {
		return nil, nil, fmt.Errorf("publish: a registry and a signer are required: %w", errdef.ErrInvalid)
	}
	c = &ceremony{reg: reg, opts: opts, log: opts.Logger, now: serialised(opts.Now)}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.started = c.now()
	c.res = &Result{Tag: opts.Tag, Mode: reg.Mode(), Format: reg.Format()}
	c.key = func(context.Context) (*accessory.Signer, error) { return signer.key, nil }
	done = func() {}
	if signer.load != nil {
		c.key = signer.load
		done = func() {
			go func() { // close what was loaded, without waiting for a slow load
				if s, err := signer.load(context.WithoutCancel(ctx)); err == nil && s != nil {
					s.Close()
				}
			}()
		}
	}
	return c, done, nil
}

// serialised returns now made safe to call from several goroutines (the
// signature and the attestations are written at once): a caller's clock
// need not be; nil stays nil.
func serialised(now func() time.Time) func() time.Time {
	if now == nil {
		return nil
	}
	var mu sync.Mutex
	return func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now()
	}
}

// step records a completed step that began at since.
func (c *ceremony) step(name string, existing bool, since time.Time) {
	t := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.res.Steps = append(c.res.Steps, Step{Name: name, Existing: existing, Duration: t.Sub(since)})
	c.log.Info(name, "existing", existing, "duration", t.Sub(since))
}

// seal runs the part of the ceremony that both ways share, for content
// now known as desc and b: BeforeSign, the signature and the provenance
// and SBOM attestations, then BeforeTag.
func (c *ceremony) seal(ctx context.Context, dst *target.Target, desc ocispec.Descriptor, b *ociwf.Build) error {
	ready := c.now()
	reg, opts := c.reg, c.opts
	subj := accessory.NewSubject(target.Ref{Name: dst.Name, Reference: opts.Tag}, desc.Digest)
	if opts.BeforeSign != nil {
		if err := opts.BeforeSign(ctx, desc, b); err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
	}
	// Read what a previous run stored while the key may still be
	// loading; Sign and AttestAll then skip that round trip.
	pre, err := reg.Prefetch(ctx, subj)
	if err != nil {
		return fmt.Errorf("publish %s: %w", subj, err)
	}
	s, err := c.key(ctx)
	if err != nil {
		return fmt.Errorf("publish %s: %w", subj, err)
	}
	c.log.Debug("signer ready", "waited", c.now().Sub(ready))
	var event *accessory.AttestOptions
	if lc := opts.Lifecycle; lc != nil {
		t := c.now()
		if event, err = c.gate(ctx, lc, dst.Pinned(desc.Digest), s, b); err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		c.step("lifecycle", event == nil, t)
	}

	po := opts.Provenance
	po.StartedOn, po.FinishedOn = c.started, ready
	pred, err := provenance.Generate(b, po)
	if err != nil {
		return fmt.Errorf("publish %s: %w", subj, err)
	}
	raw, err := provenance.Marshal(pred)
	if err != nil {
		return fmt.Errorf("publish %s: provenance: %w", subj, err)
	}

	sign := func(ctx context.Context) error {
		t := c.now()
		r, err := reg.Sign(ctx, s, subj, accessory.SignOptions{Annotations: opts.Annotations, Stored: pre})
		if err != nil {
			return fmt.Errorf("publish %s: sign: %w", subj, err)
		}
		c.step("sign", r.Existing, t)
		return nil
	}
	attestBoth := func(ctx context.Context) error {
		t := c.now()
		all := []accessory.AttestOptions{
			{Type: provenance.PredicateType, Predicate: raw},
			{Type: accessory.TypeCycloneDX, Predicate: b.SBOM},
		}
		if event != nil {
			all = append(all, *event)
		}
		rs, err := reg.AttestAll(ctx, s, subj, all, pre)
		if err != nil {
			return fmt.Errorf("publish %s: attest provenance and SBOM: %w", subj, err)
		}
		c.step("attest-provenance", rs[0].Existing, t)
		c.step("attest-sbom", rs[1].Existing, t)
		return nil
	}
	if reg.Mode() == accessory.Referrers || reg.Format() != accessory.FormatLegacy {
		// Referrers, and bundles whatever the mode: without a
		// referrers API, both writes update one fallback index tag;
		// in sequence neither loses the other's entry.
		if err := sign(ctx); err != nil {
			return err
		}
		if err := attestBoth(ctx); err != nil {
			return err
		}
	} else {
		// The signature and the attestations live under different tags.
		g, gctx := errgroup.WithContext(ctx)
		g.Go(func() error { return sign(gctx) })
		g.Go(func() error { return attestBoth(gctx) })
		if err := g.Wait(); err != nil {
			return err
		}
	}
	if opts.BeforeTag != nil {
		if err := opts.BeforeTag(ctx, desc); err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
	}
	return nil
}

// Fixed returns a Lifecycle.Recorder function that always returns rec.
func Fixed(rec *govern.Recorder) func(context.Context, *accessory.Signer) (*govern.Recorder, error) {
	return func(context.Context, *accessory.Signer) (*govern.Recorder, error) { return rec, nil }
}

// recorder returns the ceremony's lifecycle recorder, made once.
func (c *ceremony) recorder(ctx context.Context, s *accessory.Signer) (*govern.Recorder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rec != nil {
		return c.rec, nil
	}
	if c.opts.Lifecycle.Recorder == nil {
		return nil, fmt.Errorf("lifecycle: no recorder: %w", errdef.ErrInvalid)
	}
	rec, err := c.opts.Lifecycle.Recorder(ctx, s)
	if err != nil {
		return nil, err
	}
	c.rec = rec
	return rec, nil
}

// gate checks the uses: dependencies and the version's lifecycle, and
// returns the publication event to attest (nil when the chain records the
// publication already).
func (c *ceremony) gate(ctx context.Context, lc *Lifecycle, pinned string, s *accessory.Signer, b *ociwf.Build) (*accessory.AttestOptions, error) {
	rec, err := c.recorder(ctx, s)
	if err != nil {
		return nil, err
	}
	warnings, err := rec.CheckUses(ctx, b.Plan, govern.UsesOptions{AllowDeprecated: lc.AllowDeprecated})
	for _, w := range warnings {
		c.log.Warn(w)
	}
	c.mu.Lock()
	c.res.Warnings = append(c.res.Warnings, warnings...)
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	ev, err := rec.PublicationEvent(ctx, pinned, s, govern.EventOptions{Actor: lc.Actor})
	if err != nil || ev == nil {
		return nil, err
	}
	raw, id, err := ev.Encode()
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.res.Event = id
	c.mu.Unlock()
	// Appended, never recognised as a duplicate by predicate type: the
	// chain, read above, says whether the publication is recorded.
	return &accessory.AttestOptions{Type: lifecycle.EventPredicateType, Predicate: raw, Duplicates: accessory.Append, Now: c.now,
		Recorded: govern.SameTransition(ev)}, nil
}

// supersede deprecates the version lc.Supersedes names in favour of the
// one just published.
func (c *ceremony) supersede(ctx context.Context, res *Result) error {
	lc := c.opts.Lifecycle
	if lc == nil || lc.Supersedes == "" {
		return nil
	}
	s, err := c.key(ctx)
	if err != nil {
		return err
	}
	rec, err := c.recorder(ctx, s)
	if err != nil {
		return err
	}
	t := c.now()
	r, err := rec.Transition(ctx, lc.Supersedes, s, lifecycle.Deprecated, govern.EventOptions{
		Actor: lc.Actor, Reason: "superseded by " + res.Reference, Replacement: res.Reference})
	var te *lifecycle.TransitionError
	if errors.As(err, &te) && (te.From == lifecycle.Retired || te.From == lifecycle.Archived) {
		// Past deprecation already: nothing to record.
		w := fmt.Sprintf("%s is %s already; not deprecated", lc.Supersedes, te.From)
		c.log.Warn(w)
		res.Warnings = append(res.Warnings, w)
		return nil
	}
	if err != nil {
		return fmt.Errorf("published %s, but deprecating %s failed (rerun the command to finish): %w", res.Reference, lc.Supersedes, err)
	}
	c.step("supersede", r.Existing, t)
	res.Superseded = r
	return nil
}

// result is the completed publication of desc, its steps in order.
func (c *ceremony) result(dst *target.Target, desc ocispec.Descriptor) *Result {
	c.mu.Lock()
	defer c.mu.Unlock()
	slices.SortStableFunc(c.res.Steps, func(a, b Step) int { return order(a.Name) - order(b.Name) })
	c.res.Descriptor = desc
	c.res.Reference = dst.Pinned(desc.Digest)
	return c.res
}

// order ranks steps as the ceremony defines them; sign and attest run
// concurrently and finish in any order.
func order(step string) int {
	return slices.Index([]string{"push", "check", "lifecycle", "sign", "attest-provenance", "attest-sbom", "tag", "supersede"}, step)
}
