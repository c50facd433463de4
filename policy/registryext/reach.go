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
// the referrers (signatures, attestations) of all of those.
func (m *manifests) Delete(ctx context.Context, dgst digest.Digest) error {
	defer m.r.p.repos.exclusive(m.r.name())()
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
	}
	if err := m.ManifestService.Delete(ctx, dgst); err != nil {
		return err
	}
	if subject != nil {
		return m.r.p.referrers.remove(ctx, m.r.p.log, m.r.name(), subject.Digest, dgst)
	}
	return nil
}

// refuseProtected denies deleting dgst (what: a manifest or a blob) when a
// protected tag reaches it; how says so in the message. The caller holds
// the repository's lock exclusive.
func (r *repository) refuseProtected(ctx context.Context, what string, dgst digest.Digest, how string) error {
	b := &reachBudget{steps: maxReach, until: time.Now().Add(maxReachTime)}
	tag, rule, err := r.protecting(ctx, dgst, b)
	if err != nil || tag == "" {
		return err
	}
	if b.spent() {
		return r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule,
			Message: fmt.Sprintf("%s %s of %s may be protected: checking the protected tags stopped at its bound (%d manifests and tags, %s) at tag %s (rule %s), so the delete is refused; let ociwf registry gc remove unreferenced content", what, dgst, r.name(), maxReach, maxReachTime, tag, rule)})
	}
	return r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule,
		Message: fmt.Sprintf("%s %s of %s is protected: tag %s (rule %s) %s", what, dgst, r.name(), tag, rule, how)})
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

// protecting returns a protected tag of the repository that reaches dgst,
// with its rule, or "". A tag reaches the manifest it names, every
// manifest and blob that manifest references (an index's manifests, at
// any depth, and their configs and layers), and the referrers of each of
// those manifests with what they reference. Content that cannot be read
// for another reason than its absence counts as reached.
func (r *repository) protecting(ctx context.Context, dgst digest.Digest, b *reachBudget) (string, string, error) {
	ts := r.Repository.Tags(ctx)
	all, err := ts.All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if errors.As(err, &unknown) {
		return "", "", nil
	}
	if err != nil {
		return "", "", err
	}
	ms, err := r.Repository.Manifests(ctx)
	if err != nil {
		return "", "", err
	}
	seen := map[digest.Digest]bool{} // walked already, from any protected tag
	for _, t := range all {
		mode, rule := r.p.rules.Match(r.name(), t)
		if mode == immutability.Mutable {
			continue
		}
		if !b.step() {
			return t, rule.Name, nil
		}
		desc, err := ts.Get(ctx, t)
		if err != nil {
			continue // untagged meanwhile
		}
		found, err := r.reaches(ctx, ms, desc.Digest, dgst, seen, b)
		if err != nil || found {
			return t, rule.Name, err
		}
	}
	return "", "", nil
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
	defer b.r.p.repos.exclusive(b.r.name())()
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
