package registryext

import (
	"context"
	"errors"
	"fmt"

	"github.com/distribution/distribution/v3"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/immutability"
)

type manifests struct {
	distribution.ManifestService
	r *repository
}

func tagOption(options []distribution.ManifestServiceOption) string {
	for _, o := range options {
		if t, ok := o.(distribution.WithTagOption); ok {
			return t.Tag
		}
	}
	return ""
}

// Put enforces the rules for a manifest PUT by tag. For a protected tag,
// checking the tag, storing the manifest and tagging it happen under the
// tag's lock, so of racing writers exactly one creates it; Distribution's
// own Tag call afterwards finds the tag already set. A protected write
// (see protectedWrite) holds its repository's lock shared throughout, so
// no delete of that repository checks and deletes in between. A write
// that stores a lifecycle event or approval records its version in the
// lifecycle index before the lock is released.
func (m *manifests) Put(ctx context.Context, man distribution.Manifest, options ...distribution.ManifestServiceOption) (digest.Digest, error) {
	tag := tagOption(options)
	if m.protectedWrite(man, tag) {
		l, err := m.r.p.lockRepo(ctx, m.r.name(), true)
		if err != nil {
			return "", err
		}
		defer l.Release()
		ctx = l.Context()
	}
	mediaType, payload, err := man.Payload()
	if err != nil {
		return "", err
	}
	subject, desc, isReferrer := subjectOf(mediaType, payload)
	var referrerTypes []string
	if isReferrer {
		referrerTypes = manifestTypes(ctx, m.r.Repository.Blobs(ctx), man)
		if st := stateOf(ctx); st != nil {
			st.setPredicateTypes(referrerTypes)
		}
	}
	got, err := m.put(ctx, man, options...)
	if err != nil {
		return got, err
	}
	if isReferrer {
		// Index it by its subject for the referrers API.
		if err := m.r.p.referrers.add(ctx, m.r.p.log, m.r.name(), subject.Digest, desc); err != nil {
			return got, fmt.Errorf("index referrer %s of %s: %w", got, subject.Digest, err)
		}
		if st := stateOf(ctx); st != nil {
			st.setSubject(subject.Digest)
		}
		if anyLifecycle(referrerTypes) {
			if err := m.r.p.lifecycle.mark(ctx, m.r.name(), subject.Digest, got); err != nil {
				return got, fmt.Errorf("record lifecycle referrer %s of %s: %w", got, subject.Digest, err)
			}
		}
	}
	m.r.p.reads.invalidate(m.r.name())
	return got, nil
}

// protectedWrite reports whether storing man (under tag, if not "") can
// make content protected: a protected tag, a cosign attestation tag
// (which may take lifecycle attestations), or a subject, whose referrers
// a protected tag reaches.
func (m *manifests) protectedWrite(man distribution.Manifest, tag string) bool {
	if tag != "" {
		if mode, _ := m.r.p.rules.Match(m.r.name(), tag); mode != immutability.Mutable {
			return true
		}
		if _, ok := attSubject(tag); ok {
			return true
		}
	}
	mediaType, payload, err := man.Payload()
	if err != nil {
		return true
	}
	_, _, ok := subjectOf(mediaType, payload)
	return ok
}

func (m *manifests) put(ctx context.Context, man distribution.Manifest, options ...distribution.ManifestServiceOption) (digest.Digest, error) {
	tag := tagOption(options)
	if tag == "" {
		return m.ManifestService.Put(ctx, man, options...)
	}
	repo := m.r.name()
	mediaType, payload, err := man.Payload()
	if err != nil {
		return "", err
	}
	dgst := digest.FromBytes(payload)
	if immutability.IsAccessoryTag(tag) {
		msg, err := m.notAccessory(ctx, tag, man)
		if err != nil {
			return "", err
		}
		if msg != "" {
			return "", m.r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: immutability.AccessoryRule().Name,
				Message: msg + "; push other content under a tag cosign does not reserve"})
		}
	}
	mode, rule := m.r.p.rules.Match(repo, tag)
	subject, att := attSubject(tag)
	if mode == immutability.Mutable && !att {
		return m.ManifestService.Put(ctx, man, options...)
	}
	lease, err := m.r.p.lockTag(ctx, repo, tag)
	if err != nil {
		return "", err
	}
	defer lease.Release()
	ctx = lease.Context()
	tags := m.r.Repository.Tags(ctx)
	var lifecycleAfter bool
	if att {
		var err error
		if lifecycleAfter, err = m.r.checkAttestations(ctx, tags, tag, dgst, man); err != nil {
			return "", err
		}
	}
	if mode != immutability.Mutable {
		if _, err := m.r.checkMove(ctx, tags, tag, mode, rule, dgst, man); err != nil {
			return "", err
		}
	}
	got, err := m.ManifestService.Put(ctx, man, options...)
	if err != nil {
		return "", err
	}
	if err := m.r.tagUnder(ctx, lease, tags, tag, v1.Descriptor{MediaType: mediaType, Digest: got, Size: int64(len(payload))}); err != nil {
		return "", err
	}
	if st := stateOf(ctx); st != nil {
		st.setTagged(tag, got)
	}
	if lifecycleAfter {
		if err := m.r.p.lifecycle.mark(ctx, repo, subject, got); err != nil {
			return "", fmt.Errorf("record lifecycle attestations %s of %s: %w", got, subject, err)
		}
	}
	return got, nil
}

// checkAttestations applies the lifecycle rule to moving the cosign
// attestation tag tag to man (digest dgst): it must keep every lifecycle
// event and approval of the manifest the tag names, whatever the rules
// say of accessory tags. It notes the predicate types man adds for the
// audit log and reports whether man carries lifecycle attestations. The
// caller holds the tag's lock.
func (r *repository) checkAttestations(ctx context.Context, ts distribution.TagService, tag string, dgst digest.Digest, man distribution.Manifest) (bool, error) {
	blobs := r.Repository.Blobs(ctx)
	prev, err := r.taggedManifest(ctx, ts, tag)
	if err != nil {
		return false, err
	}
	types := layerTypes(ctx, blobs, nil, added(prev, man))
	if st := stateOf(ctx); st != nil {
		st.setPredicateTypes(types)
	}
	if prev != nil {
		reads := maxStatementReads
		for _, l := range added(man, prev) { // what man drops
			if t := layerType(ctx, blobs, nil, l, &reads); isLifecycleType(t) {
				return false, r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: LifecycleRule,
					Message: fmt.Sprintf("tag %s of %s holds lifecycle %s %s, and lifecycle events and approvals are append-only (rule %s): the new manifest drops it; keep every existing entry", tag, r.name(), lifecycleKind(t), l.Digest, LifecycleRule)})
			}
		}
	}
	return anyLifecycle(types) || (prev != nil && carriesLifecycle(ctx, blobs, prev)), nil
}

// taggedManifest returns the manifest tag names, or nil for an unknown
// tag.
func (r *repository) taggedManifest(ctx context.Context, ts distribution.TagService, tag string) (distribution.Manifest, error) {
	cur, err := ts.Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	switch {
	case errors.As(err, &unknown):
		return nil, nil
	case err != nil:
		return nil, err
	}
	ms, err := r.Repository.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	return ms.Get(ctx, cur.Digest)
}

// manifest reads the stored manifest dgst.
func (r *repository) manifest(ctx context.Context, dgst digest.Digest) (distribution.Manifest, error) {
	ms, err := r.Repository.Manifests(ctx)
	if err != nil {
		return nil, err
	}
	return ms.Get(ctx, dgst)
}

type tags struct {
	distribution.TagService
	r *repository
}

// Tag applies the rules to a protected tag under the tag's lock. The
// handler's call after ociwf's Put, which has already tagged under that
// lock, writes nothing: by then another client may have moved an
// append-only tag on, and re-tagging would roll it back.
func (t *tags) Tag(ctx context.Context, tag string, desc v1.Descriptor) error {
	repo := t.r.name()
	if st := stateOf(ctx); st != nil && st.alreadyTagged(tag, desc.Digest) {
		return nil
	}
	mode, rule := t.r.p.rules.Match(repo, tag)
	if _, att := attSubject(tag); att && mode == immutability.Mutable {
		// Only through a manifest PUT, which checks the lifecycle
		// attestations: a tag moved onto a stored manifest would skip it.
		ctx, lease, release, err := t.r.lockBoth(ctx, tag)
		if err != nil {
			return err
		}
		defer release()
		man, err := t.r.manifest(ctx, desc.Digest)
		if err != nil {
			return err
		}
		if _, err := t.r.checkAttestations(ctx, t.TagService, tag, desc.Digest, man); err != nil {
			return err
		}
		return t.r.tagUnder(ctx, lease, t.TagService, tag, desc)
	}
	if mode == immutability.Mutable {
		return t.TagService.Tag(ctx, tag, desc)
	}
	ctx, lease, release, err := t.r.lockBoth(ctx, tag)
	if err != nil {
		return err
	}
	defer release()
	switch same, err := t.r.checkMove(ctx, t.TagService, tag, mode, rule, desc.Digest, nil); {
	case err != nil:
		return err
	case same:
		return nil
	}
	return t.r.tagUnder(ctx, lease, t.TagService, tag, desc)
}

// lockBoth takes tag's repository's lock shared and then tag's lock, and
// returns the context to write with, the tag's lease and the release of
// both.
func (r *repository) lockBoth(ctx context.Context, tag string) (context.Context, Lease, func(), error) {
	rl, err := r.p.lockRepo(ctx, r.name(), true)
	if err != nil {
		return ctx, nil, nil, err
	}
	tl, err := r.p.lockTag(rl.Context(), r.name(), tag)
	if err != nil {
		rl.Release()
		return ctx, nil, nil, err
	}
	return tl.Context(), tl, func() { tl.Release(); rl.Release() }, nil
}

// tagUnder points tag at desc, the last step of a protected write under
// lease: the lease must still hold (Lease.Check, which for a Redis lease
// renews it and leaves at least half a lease for the write), or nothing is
// written and the client gets 503 and may retry.
func (r *repository) tagUnder(ctx context.Context, lease Lease, ts distribution.TagService, tag string, desc v1.Descriptor) error {
	if err := lease.Check(ctx); err != nil {
		r.p.log.Error("coordination: tag not written", "repository", r.name(), "tag", tag, "digest", desc.Digest.String(), "fence", lease.Fence(), "err", err)
		return unavailableError(err)
	}
	err := ts.Tag(ctx, tag, desc)
	var taken *TagTakenError
	if errors.As(err, &taken) {
		// Another writer, not ordered by this lock (a replica in another
		// coordination mode, or one whose lease lapsed), created the tag.
		_, rule := r.p.rules.Match(r.name(), tag)
		name := ""
		if rule != nil {
			name = rule.Name
		}
		r.p.log.Error("storage refused to overwrite an immutable tag another writer created meanwhile: check that every replica uses the same coordination", "repository", r.name(), "tag", tag, "names", taken.Digest.String(), "refused", desc.Digest.String(), "fence", lease.Fence())
		return r.deny(ctx, Denial{Tag: tag, Digest: desc.Digest, Rule: name,
			Message: fmt.Sprintf("tag %s of %s is immutable (rule %s) and names %s, not %s; push under a new tag", tag, r.name(), name, taken.Digest, desc.Digest)})
	}
	return err
}

// checkMove applies a protected tag's rule (mode, rule) to moving tag to
// dgst, whose manifest is man (nil: the one stored): an unknown tag may be set and a tag
// already naming dgst stays (same is true); an immutable tag may not
// move, an append-only one only to a manifest that keeps every entry of
// the one it names. A refusal is a denial. The caller holds the tag's
// lock.
func (r *repository) checkMove(ctx context.Context, ts distribution.TagService, tag string, mode immutability.Mode, rule *immutability.Rule, dgst digest.Digest, man distribution.Manifest) (same bool, err error) {
	repo := r.name()
	cur, err := ts.Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	switch {
	case errors.As(err, &unknown):
		return false, nil
	case err != nil:
		return false, err
	case cur.Digest == dgst:
		return true, nil
	case mode == immutability.Immutable:
		return false, r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is immutable (rule %s) and names %s, not %s; push under a new tag", tag, repo, rule.Name, cur.Digest, dgst)})
	}
	ms, err := r.Repository.Manifests(ctx)
	if err != nil {
		return false, err
	}
	prev, err := ms.Get(ctx, cur.Digest)
	if err != nil {
		return false, err
	}
	if man == nil {
		if man, err = ms.Get(ctx, dgst); err != nil {
			return false, err
		}
	}
	if missing := dropped(prev, man); len(missing) > 0 {
		return false, r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is append-only (rule %s): the new manifest drops %s of %s; keep every existing entry", tag, repo, rule.Name, missing[0], cur.Digest)})
	}
	return false, nil
}

// Untag refuses to delete a protected tag.
func (t *tags) Untag(ctx context.Context, tag string) error {
	repo := t.r.name()
	if mode, rule := t.r.p.rules.Match(repo, tag); mode != immutability.Mutable {
		cur, _ := t.TagService.Get(ctx, tag)
		return t.r.deny(ctx, Denial{Tag: tag, Digest: cur.Digest, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is %s (rule %s) and cannot be deleted", tag, repo, mode, rule.Name)})
	}
	if _, att := attSubject(tag); att {
		lease, err := t.r.p.lockTag(ctx, repo, tag)
		if err != nil {
			return err
		}
		defer lease.Release()
		ctx := lease.Context()
		cur, err := t.TagService.Get(ctx, tag)
		if err == nil {
			man, err := t.r.manifest(ctx, cur.Digest)
			if err != nil {
				return err
			}
			if carriesLifecycle(ctx, t.r.Repository.Blobs(ctx), man) {
				return t.r.deny(ctx, Denial{Tag: tag, Digest: cur.Digest, Rule: LifecycleRule,
					Message: fmt.Sprintf("tag %s of %s holds lifecycle events or approvals, which cannot be deleted (rule %s)", tag, repo, LifecycleRule)})
			}
		}
	}
	return t.TagService.Untag(ctx, tag)
}
