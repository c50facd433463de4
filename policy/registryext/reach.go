package registryext

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/immutability"
)

// Delete refuses to delete a manifest that a protected tag reaches:
// the manifest it names, everything an index contains, at any depth, and
// the referrers (signatures, attestations) of all of those; likewise a
// manifest that a version with lifecycle attestations reaches, and a
// manifest that holds lifecycle attestations.
func (m *manifests) Delete(ctx context.Context, dgst digest.Digest) error {
	l, err := m.r.p.lockRepo(ctx, m.r.name(), false)
	if err != nil {
		return err
	}
	defer l.Release()
	ctx = l.Context()
	switch ok, err := m.ManifestService.Exists(ctx, dgst); {
	case err != nil:
		return err
	case !ok:
		return distribution.ErrBlobUnknown // Distribution's handler answers 404 MANIFEST_UNKNOWN
	}
	if err := m.r.refuseProtected(ctx, "manifest", dgst, "reaches it"); err != nil {
		return err
	}
	var subject *v1.Descriptor
	if man, err := m.ManifestService.Get(ctx, dgst); err == nil {
		if mt, payload, err := man.Payload(); err == nil {
			subject, _, _ = subjectOf(mt, payload)
		}
		// One the lifecycle index does not name (stored before it
		// existed, or its entry could not be written).
		if carriesLifecycle(ctx, m.r.Repository.Blobs(ctx), man) {
			return m.r.deny(ctx, Denial{Digest: dgst, Rule: LifecycleRule,
				Message: fmt.Sprintf("manifest %s of %s holds lifecycle events or approvals, which cannot be deleted (rule %s)", dgst, m.r.name(), LifecycleRule)})
		}
	}
	if err := m.ManifestService.Delete(ctx, dgst); err != nil {
		return err
	}
	m.r.p.reads.invalidate(m.r.name())
	if subject != nil {
		return m.r.p.referrers.remove(ctx, m.r.p.log, m.r.name(), subject.Digest, dgst)
	}
	return nil
}

// protector is what protects content: a protected tag with its rule, or
// a version with lifecycle attestations (rule LifecycleRule), reached
// directly or through its attestation tag.
type protector struct {
	tag, rule string
	version   digest.Digest // for LifecycleRule
}

// refuseProtected denies deleting dgst (what: a manifest or a blob) when a
// protected tag, or a version with lifecycle attestations, reaches it;
// how says so in the message. The caller holds the repository's lock
// exclusive.
func (r *repository) refuseProtected(ctx context.Context, what string, dgst digest.Digest, how string) error {
	b := &reachBudget{steps: maxReach, until: time.Now().Add(maxReachTime)}
	p, err := r.protecting(ctx, dgst, b)
	if err != nil || p.rule == "" {
		return err
	}
	by := fmt.Sprintf("tag %s (rule %s)", p.tag, p.rule)
	if p.rule == LifecycleRule {
		by = fmt.Sprintf("version %s, which has lifecycle events or approvals (rule %s),", p.version, p.rule)
		if p.tag != "" {
			by = fmt.Sprintf("the lifecycle attestations of version %s under tag %s (rule %s)", p.version, p.tag, p.rule)
		}
	}
	if b.spent() {
		return r.deny(ctx, Denial{Tag: p.tag, Digest: dgst, Rule: p.rule,
			Message: fmt.Sprintf("%s %s of %s may be protected: checking the protected tags and versions stopped at its bound (%d manifests and tags, %s) at %s, so the delete is refused; let ociwf registry gc remove unreferenced content", what, dgst, r.name(), maxReach, maxReachTime, by)})
	}
	if p.rule == LifecycleRule && p.tag == "" && p.version == dgst {
		return r.deny(ctx, Denial{Digest: dgst, Rule: p.rule,
			Message: fmt.Sprintf("%s %s of %s is protected: it is a version with lifecycle events or approvals, kept with them for good (rule %s)", what, dgst, r.name(), p.rule)})
	}
	return r.deny(ctx, Denial{Tag: p.tag, Digest: dgst, Rule: p.rule,
		Message: fmt.Sprintf("%s %s of %s is protected: %s %s", what, dgst, r.name(), by, how)})
}

// maxReach and maxReachTime bound one delete's protection check: the
// protected tags it reads and the manifests and blobs it visits, and the
// time it takes. Past either the content counts as reached: the delete
// is refused.
const (
	maxReach     = 10000
	maxReachTime = 5 * time.Second
)

// reachBudget is what is left of one protection check's bounds.
type reachBudget struct {
	steps int
	until time.Time
	over  bool
}

// step spends one step and reports whether the bounds still hold.
func (b *reachBudget) step() bool {
	if b.steps--; b.steps < 0 || time.Now().After(b.until) {
		b.over = true
	}
	return !b.over
}

func (b *reachBudget) spent() bool { return b.over }

// protecting returns what protects dgst, or the zero protector. A
// protected tag reaches the manifest it names, every manifest and blob
// that manifest references (an index's manifests, at any depth, and their
// configs and layers), and the referrers of each of those manifests with
// what they reference. A version the lifecycle index names reaches
// likewise, and so does its attestation tag. Content that cannot be read
// for another reason than its absence counts as reached.
func (r *repository) protecting(ctx context.Context, dgst digest.Digest, b *reachBudget) (protector, error) {
	ts := r.Repository.Tags(ctx)
	all, err := ts.All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if err != nil && !errors.As(err, &unknown) {
		return protector{}, err
	}
	ms, err := r.Repository.Manifests(ctx)
	if err != nil {
		return protector{}, err
	}
	seen := map[digest.Digest]bool{} // walked already, from any protected tag
	for _, t := range all {
		mode, rule := r.p.rules.Match(r.name(), t)
		if mode == immutability.Mutable {
			continue
		}
		p := protector{tag: t, rule: rule.Name}
		if !b.step() {
			return p, nil
		}
		desc, err := ts.Get(ctx, t)
		if err != nil {
			continue // untagged meanwhile
		}
		found, err := r.reaches(ctx, ms, desc.Digest, dgst, seen, b)
		if err != nil || found {
			return p, err
		}
	}
	versions, err := r.p.lifecycle.subjects(ctx, r.name())
	if err != nil {
		return protector{}, fmt.Errorf("read the lifecycle index of %s: %w", r.name(), err)
	}
	for _, v := range versions {
		p := protector{rule: LifecycleRule, version: v}
		if !b.step() {
			return p, nil
		}
		found, err := r.reaches(ctx, ms, v, dgst, seen, b)
		if err != nil || found {
			return p, err
		}
		p.tag = attTag(v)
		desc, err := ts.Get(ctx, p.tag)
		var noTag distribution.ErrTagUnknown
		switch {
		case errors.As(err, &noTag):
			continue
		case err != nil:
			return p, nil // unreadable: counts as reached
		}
		if found, err = r.reaches(ctx, ms, desc.Digest, dgst, seen, b); err != nil || found {
			return p, err
		}
	}
	return protector{}, nil
}

// reaches walks from root and reports whether it gets to target.
func (r *repository) reaches(ctx context.Context, ms distribution.ManifestService, root, target digest.Digest, seen map[digest.Digest]bool, b *reachBudget) (bool, error) {
	queue := []digest.Digest{root}
	for len(queue) > 0 {
		d := queue[0]
		queue = queue[1:]
		if d == target {
			return true, nil
		}
		if seen[d] {
			continue
		}
		if seen[d] = true; !b.step() {
			return true, nil
		}
		man, err := ms.Get(ctx, d)
		var unknownRev distribution.ErrManifestUnknownRevision
		var unknown distribution.ErrManifestUnknown
		switch {
		case errors.As(err, &unknownRev), errors.As(err, &unknown), errors.Is(err, distribution.ErrBlobUnknown):
			continue // a blob, or gone
		case err != nil:
			var blob distribution.ErrManifestBlobUnknown
			if errors.As(err, &blob) {
				continue
			}
			return true, nil
		}
		for _, ref := range man.References() {
			queue = append(queue, ref.Digest)
		}
		refs, err := r.p.referrers.digests(ctx, r.p.log, r.name(), d)
		if err != nil {
			return true, nil
		}
		queue = append(queue, refs...)
	}
	return false, nil
}

// blobs serves small blobs from memory and refuses to delete blobs that
// protected tags reach.
type blobs struct {
	distribution.BlobStore
	r *repository
}

// Delete refuses to unlink a blob that a protected tag reaches.
func (b *blobs) Delete(ctx context.Context, dgst digest.Digest) error {
	l, err := b.r.p.lockRepo(ctx, b.r.name(), false)
	if err != nil {
		return err
	}
	defer l.Release()
	ctx = l.Context()
	if _, err := b.BlobStore.Stat(ctx, dgst); err != nil {
		if errors.Is(err, distribution.ErrBlobUnknown) {
			return distribution.ErrBlobUnknown // Distribution's handler answers 404 BLOB_UNKNOWN
		}
		return err
	}
	if err := b.r.refuseProtected(ctx, "blob", dgst, "references it"); err != nil {
		return err
	}
	return b.BlobStore.Delete(ctx, dgst)
}
