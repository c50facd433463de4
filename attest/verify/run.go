package verify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	oraserr "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// run is one verification.
type run struct {
	v     *Verifier
	rep   *Report
	scope *trust.Scope
	subj  accessory.Subject
	wf    Workflow
	found *accessory.Found
	// Accepted signatures' annotations and attestations' statements.
	signedTags []string
	accepted   map[string][]statement // by predicate type
	// bundles are the stored sigstore bundles, each checked once.
	bundles []checkedBundle
	// cache is Options.Cache when this verification may use it, with the
	// policy identity its verdicts are kept under.
	cache    *Cache
	policyID string
}

func (r *run) run(ctx context.Context, ref string) (wf *Workflow, err error) {
	rep := r.rep
	tgt, err := r.v.opener.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	rep.Repository = tgt.Name
	if !tgt.IsDigest() {
		rep.Tag = tgt.Reference
	}
	// A repository no scope covers has nothing trusted: the signatures
	// check fails, after the content checks ran.
	scope, err := r.v.policy.For(scopeName(tgt.Name))
	if err != nil && !isNoScope(err) {
		return nil, err
	}
	noScope := err != nil
	if noScope {
		scope = &trust.Scope{}
	}
	r.scope = scope
	rep.Scope = scope.Name

	// A cached verdict on a reference by digest needs no request at all;
	// a tag is resolved first. Skipping scopes are not cached: nothing
	// vouches for them.
	started := time.Time{}
	if c := r.v.opts.Cache; c != nil && !scope.Skip && !noScope {
		started = c.now()
		if r.policyID, err = r.v.policyID(ctx, scope); err != nil {
			return nil, err
		}
		r.cache = c
		if d, err := digest.Parse(tgt.Reference); err == nil && tgt.IsDigest() {
			if cc, vd := c.lookup(tgt.Name, d, r.policyID); vd != nil {
				return r.hit(accessory.NewSubject(tgt.Ref, d), cc, vd)
			}
		}
	}

	// 1. Reference: resolve once; everything after uses the digest.
	subj, desc, err := accessory.ResolveSubject(ctx, tgt.Storage, tgt.Ref)
	switch {
	case errors.Is(err, oraserr.ErrSizeExceedsLimit):
		return nil, rep.fail(CheckManifest, "manifest too large", fmt.Sprintf("at most %d bytes", ociwf.MaxManifestBytes), err.Error())
	case errors.Is(err, errdef.ErrVerification):
		return nil, rep.fail(CheckReference, "the registry resolved the digest to another manifest", tgt.Reference, desc.Digest.String())
	case err != nil:
		return nil, fmt.Errorf("verify %s: %w", ref, err)
	}
	rep.Digest = desc.Digest
	r.subj = subj
	rep.pass(CheckReference, "%s resolved once to %s", ref, desc.Digest)
	var cached, checked *cachedContent // content kept before; content checked now
	if r.cache != nil {
		cc, vd := r.cache.lookup(tgt.Name, desc.Digest, r.policyID)
		if vd != nil {
			return r.hit(subj, cc, vd)
		}
		cached = cc
		if cached != nil {
			rep.Cached = CacheRevalidated
		}
		r.cache.count(rep.Cached)
		defer func() {
			// Only a verification that passed leaves a verdict; content
			// whose checks passed is kept whatever failed after them.
			var vd *cachedVerdict
			if err == nil {
				vd = &cachedVerdict{id: r.policyID, checked: started, report: copyReport(rep, rep.Reference, rep.Tag), signedTags: slices.Clone(r.signedTags)}
			}
			r.cache.store(tgt.Name, desc.Digest, checked, vd)
		}()
	}

	// Signatures and attestations are read while the manifest and blobs
	// are checked; nothing read is trusted before its check.
	// Find is not cancelled when a check fails first: cancelling a read
	// midway would leave the shared registry client with a failed
	// connection setup for the repository. A failure waits for it instead.
	findDone := make(chan error, 1)
	if !r.scope.Skip && !noScope {
		go func() {
			f, err := r.v.reg.Find(ctx, r.subj)
			r.found = f
			findDone <- err
		}()
	} else {
		findDone <- nil
	}
	wait := func() error {
		err := <-findDone
		findDone <- err
		return err
	}
	defer func() { _ = wait() }()

	if cached != nil {
		// 2. and 3.: the manifest and blobs this digest names passed
		// before, and cannot have changed.
		wf, err := cached.workflow()
		if err != nil {
			return nil, err
		}
		r.wf = *wf
		for _, c := range []string{CheckManifest, CheckBlobs} {
			rep.pass(c, "%s (checked before, kept in the verification cache)", cached.checks[c])
		}
	} else {
		// 2. Manifest.
		if err := r.manifest(ctx, tgt.Storage, desc); err != nil {
			return nil, err
		}
		// 3. Blobs.
		if err := r.blobs(ctx, tgt.Storage); err != nil {
			return nil, err
		}
	}
	if r.scope.Skip {
		msg := fmt.Sprintf("trust policy %q skips verification for %s: signatures, attestations and the rest were not checked", r.scope.Name, tgt.Name)
		for _, c := range Checks()[3:] {
			rep.skip(c, "%s", msg)
		}
		rep.Warnings = append(rep.Warnings, msg)
		rep.Skipped = true
		r.v.log.WarnContext(ctx, "trust policy scope skips verification", "reference", ref, "scope", r.scope.Name, "accepted", r.v.opts.AllowSkipped)
		if !r.v.opts.AllowSkipped {
			return nil, &SkippedScope{Reference: ref, Scope: r.scope.Name}
		}
		return &r.wf, nil
	}
	if noScope {
		return nil, rep.fail(CheckSignatures, "no trust policy scope covers "+tgt.Name+": nothing is trusted there",
			"a scope whose registryScopes match "+tgt.Name, "none")
	}
	if err := wait(); err != nil {
		if errors.Is(err, errdef.ErrTooLarge) {
			return nil, rep.fail(CheckSignatures, "the registry serves oversized signatures or attestations",
				fmt.Sprintf("at most %d bytes per response and %d referrers", accessory.MaxAccessoryBytes, accessory.MaxReferrers), err.Error())
		}
		return nil, fmt.Errorf("verify %s: read signatures: %w", ref, err)
	}
	for _, m := range r.found.Malformed {
		rep.Malformed++
		rep.Warnings = append(rep.Warnings, m.String())
	}
	signers, err := r.v.signers(ctx, r.scope)
	if err != nil {
		return nil, err
	}
	// 4. Signatures, then the signed tag (part of the reference check).
	if err := r.signatures(ctx, signers); err != nil {
		return nil, err
	}
	if err := r.signedTag(); err != nil {
		return nil, err
	}
	// 5. Attestations.
	if err := r.attestations(ctx, signers); err != nil {
		return nil, err
	}
	// 6. SBOM binding.
	if err := r.sbom(); err != nil {
		return nil, err
	}
	// 7. Reproducibility.
	switch {
	case cached != nil:
		rep.pass(CheckReproducibility, "%s (checked before, kept in the verification cache)", cached.checks[CheckReproducibility])
	default:
		if err := r.reproduce(ctx); err != nil {
			return nil, err
		}
		if r.cache != nil {
			if checked, err = newCachedContent(&r.wf, rep); err != nil {
				return nil, err
			}
		}
	}
	// 8. Lifecycle.
	if err := r.lifecycle(ctx); err != nil {
		return nil, err
	}
	return &r.wf, nil
}

// hit serves a verification from a verdict kept in the cache: the
// content and verdict are copied, and only the signed tag is checked
// again, for the tag requested now.
func (r *run) hit(subj accessory.Subject, cc *cachedContent, vd *cachedVerdict) (*Workflow, error) {
	r.cache.count(CacheHit)
	wf, err := cc.workflow()
	if err != nil {
		return nil, err
	}
	rep := r.rep
	*rep = *copyReport(vd.report, rep.Reference, rep.Tag)
	rep.Cached = CacheHit
	r.subj, r.signedTags = subj, vd.signedTags
	rep.pass(CheckReference, "%s resolved to %s; every check passed %s ago, within the verification cache's TTL (%s)",
		rep.Reference, subj.Digest, r.cache.now().Sub(vd.checked).Round(time.Millisecond), r.cache.ttl)
	if err := r.signedTag(); err != nil {
		return nil, err
	}
	return wf, nil
}

// manifest fetches the manifest by digest, re-hashes it and checks that it
// is a workflow manifest.
func (r *run) manifest(ctx context.Context, store oras.ReadOnlyTarget, desc ocispec.Descriptor) error {
	rep := r.rep
	m, err := ociwf.ReadManifest(ctx, store, desc)
	var bad *ociwf.ContentError
	switch {
	case errors.As(err, &bad) && errors.Is(err, errdef.ErrTooLarge):
		return rep.fail(CheckManifest, "manifest too large", bad.Expected, bad.Actual)
	case errors.As(err, &bad):
		return rep.fail(CheckManifest, "manifest "+bad.Problem, bad.Expected, bad.Actual)
	case errors.Is(err, errdef.ErrNotWorkflow):
		return rep.fail(CheckManifest, "not an ociwf workflow manifest", "OCI image manifest with artifactType "+ociwf.ArtifactType+", config "+ociwf.ConfigMediaType+" and exactly the source, plan and SBOM layers", err.Error())
	case err != nil:
		if state, ok := refusedByLifecycle(err); ok {
			// The registry's lifecycle pull rule refused the manifest.
			se := &lifecycle.StateError{Reference: rep.Reference, State: state, Restriction: state.Restriction()}
			f := rep.fail(CheckLifecycle, fmt.Sprintf("%v; the registry refuses pulls of it (its rule %s)", se, registryLifecyclePullRule), "a state the registry serves", string(state))
			f.Cause = se
			return f
		}
		return err
	}
	r.wf.Descriptor = desc
	r.wf.Manifest = m
	rep.pass(CheckManifest, "%d bytes re-hashed to %s; media types, artifactType and the three layers are ociwf's", desc.Size, desc.Digest)
	return nil
}

// blobs fetches the config and the layers concurrently, re-hashing each,
// and decodes the config and the plan.
func (r *run) blobs(ctx context.Context, store oras.ReadOnlyTarget) error {
	m := r.wf.Manifest
	parts := m.Parts()
	data := make([][]byte, len(parts))
	errs := make([]error, len(parts))
	var g errgroup.Group
	for i, p := range parts {
		g.Go(func() error {
			data[i], errs[i] = ociwf.FetchAll(ctx, store, p.Descriptor, p.Limit)
			var bad *ociwf.ContentError
			if errors.As(errs[i], &bad) {
				return nil // reported below, in order
			}
			return errs[i]
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, err := range errs {
		var bad *ociwf.ContentError
		if errors.As(err, &bad) {
			return r.rep.fail(CheckBlobs, parts[i].Name+" "+parts[i].Descriptor.Digest.String()+" "+bad.Problem, bad.Expected, bad.Actual)
		}
	}
	var cfg ociwf.Config
	if err := json.Unmarshal(data[0], &cfg); err != nil {
		return r.rep.fail(CheckBlobs, "config does not decode", "an ociwf config", err.Error())
	}
	p, err := plan.Decode(data[2])
	if err != nil {
		return r.rep.fail(CheckBlobs, "plan layer does not decode", "a canonical "+plan.APIVersion+" plan", err.Error())
	}
	if cfg.PlanDigest != m.Plan.Digest.String() {
		return r.rep.fail(CheckBlobs, "config names another plan", m.Plan.Digest.String(), cfg.PlanDigest)
	}
	if p.Source.Digest != m.Source.Digest.String() || p.Source.Size != m.Source.Size {
		return r.rep.fail(CheckBlobs, "plan names another source", fmt.Sprintf("%s (%d bytes)", m.Source.Digest, m.Source.Size), fmt.Sprintf("%s (%d bytes)", p.Source.Digest, p.Source.Size))
	}
	r.wf.Config, r.wf.Source, r.wf.PlanJSON, r.wf.SBOM, r.wf.Plan = cfg, data[1], data[2], data[3], p
	var total int64
	for _, p := range parts {
		total += p.Descriptor.Size
	}
	r.rep.pass(CheckBlobs, "config and 3 layers (%d bytes) re-hashed; config and plan decode and name the layers", total)
	return nil
}

// scopeName is the repository as trust scopes match it: host names are
// case-insensitive, so LOCALHOST:5000/wf is governed by the scope for
// localhost:5000/wf.
func scopeName(repo string) string {
	host, path, ok := strings.Cut(repo, "/")
	if !ok {
		return repo
	}
	return strings.ToLower(host) + "/" + path
}

// signedTag fails the reference check when valid signatures record
// version tags and none is the requested tag: the tag was moved.
func (r *run) signedTag() error {
	if r.subj.Tag == "" {
		return nil
	}
	if len(r.signedTags) == 0 {
		if r.v.opts.RequireSignedTag {
			return r.rep.fail(CheckReference, "no valid signature records the tag (sign with the tag, or verify by digest)", "signed tag "+r.subj.Tag, "no signed tag")
		}
		return nil
	}
	if !movedTag(r.subj.Tag, r.signedTags) {
		r.rep.pass(CheckReference, "%s resolved once to %s, the digest signed for tag %s", r.rep.Reference, r.subj.Digest, r.subj.Tag)
		return nil
	}
	return r.rep.fail(CheckReference, "the tag was moved onto content signed for another version",
		"signed tag "+r.subj.Tag, "signed tag(s) "+strings.Join(r.signedTags, ", "))
}

// movedTag reports whether tag was moved: valid signatures record version
// tags (signed) and none of them is tag.
func movedTag(tag string, signed []string) bool {
	return tag != "" && len(signed) > 0 && !slices.Contains(signed, tag)
}

// registryLifecyclePullRule is the rule name the registry extension's
// lifecycle pull rule puts in the detail of its DENIED errors
// (registryext.LifecyclePullRule).
const registryLifecyclePullRule = "lifecycle-pulls"

// refusedByLifecycle reports whether a registry refused a request with a
// DENIED error of its lifecycle pull rule, and the state it named.
func refusedByLifecycle(err error) (lifecycle.State, bool) {
	var resp *errcode.ErrorResponse
	if !errors.As(err, &resp) {
		return "", false
	}
	for _, e := range resp.Errors {
		d, ok := e.Detail.(map[string]any)
		if e.Code != errcode.ErrorCodeDenied || !ok || d["rule"] != registryLifecyclePullRule {
			continue
		}
		if s, ok := d["state"].(string); ok && lifecycle.State(s).Valid() {
			return lifecycle.State(s), true
		}
	}
	return "", false
}
