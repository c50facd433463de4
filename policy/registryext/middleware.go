package registryext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	repositorymiddleware "github.com/distribution/distribution/v3/registry/middleware/repository"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/immutability"
)

// MiddlewareName is the name ociwf's repository middleware is registered
// under with Distribution. ociwf registry serve adds it to the
// configuration with the engine it needs (OptionEngine); it cannot be
// enabled from a configuration file alone.
const MiddlewareName = "ociwf"

// OptionEngine is the middleware option that carries the shared state.
const OptionEngine = "engine"

// Registering with Distribution's middleware registry is how Distribution
// extensions are wired; it happens once, when the package loads.
func init() {
	if err := repositorymiddleware.Register(MiddlewareName, newRepository); err != nil {
		panic(err)
	}
}

// engine is what the middleware shares across the requests of one
// registry: the rules, the locks, the metrics and where denials are
// logged.
type engine struct {
	rules     *immutability.Rules
	log       *slog.Logger
	metrics   *metrics
	referrers *referrers
	// locks serialise check-and-tag per tag: a tag hashes to one of a
	// fixed set, so memory stays bounded however many tags there are.
	locks [256]sync.Mutex
	// repos order a repository's deletes against its protected writes.
	// A protected write takes its repository's lock shared, then its
	// tag's lock; a delete takes only its repository's lock, exclusive.
	repos repoLocks
}

func (e *engine) lock(repo, tag string) func() {
	h := fnv.New32a()
	h.Write([]byte(repo))
	h.Write([]byte{':'})
	h.Write([]byte(tag))
	mu := &e.locks[h.Sum32()%uint32(len(e.locks))]
	mu.Lock()
	return mu.Unlock
}

// newRepository wraps a repository with ociwf's behaviour.
func newRepository(_ context.Context, repo distribution.Repository, options map[string]any) (distribution.Repository, error) {
	e, ok := options[OptionEngine].(*engine)
	if !ok {
		return nil, fmt.Errorf("repository middleware %s needs its engine: run it through ociwf registry serve", MiddlewareName)
	}
	return &repository{Repository: repo, e: e}, nil
}

type repository struct {
	distribution.Repository
	e *engine
}

func (r *repository) name() string { return r.Named().Name() }

// noteUser passes the user Distribution authenticated to the front, for
// the audit log; the repository's services are asked for with the
// request's context.
func noteUser(ctx context.Context) {
	if st := stateOf(ctx); st != nil {
		st.noteUser(ctx)
	}
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	noteUser(ctx)
	return &blobs{BlobStore: r.Repository.Blobs(ctx), r: r}
}

func (r *repository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	noteUser(ctx)
	ms, err := r.Repository.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	return &manifests{ManifestService: ms, r: r}, nil
}

func (r *repository) Tags(ctx context.Context) distribution.TagService {
	noteUser(ctx)
	return &tags{TagService: r.Repository.Tags(ctx), r: r}
}

// Denial is a request the rules refused.
type Denial struct {
	Repository string
	Tag        string
	Digest     digest.Digest
	Rule       string
	Message    string
}

// deny records a denial for the request in ctx (the front rewrites the
// response and audits it) and returns Distribution's DENIED error.
func (r *repository) deny(ctx context.Context, d Denial) error {
	d.Repository = r.name()
	if st := stateOf(ctx); st != nil {
		st.setDenial(d)
	}
	r.e.metrics.denied(d.Rule)
	r.e.log.Warn("denied", "repository", d.Repository, "tag", d.Tag, "digest", d.Digest.String(), "rule", d.Rule, "reason", d.Message)
	return errcode.ErrorCodeDenied.WithMessage(d.Message)
}

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
// no delete of that repository checks and deletes in between.
func (m *manifests) Put(ctx context.Context, man distribution.Manifest, options ...distribution.ManifestServiceOption) (digest.Digest, error) {
	if m.protectedWrite(man, tagOption(options)) {
		defer m.r.e.repos.shared(m.r.name())()
	}
	got, err := m.put(ctx, man, options...)
	if err != nil {
		return got, err
	}
	// Index it by its subject for the referrers API.
	mediaType, payload, err := man.Payload()
	if err != nil {
		return got, err
	}
	if subject, desc, ok := subjectOf(mediaType, payload); ok {
		if err := m.r.e.referrers.add(ctx, m.r.e.log, m.r.name(), subject.Digest, desc); err != nil {
			return got, fmt.Errorf("index referrer %s of %s: %w", got, subject.Digest, err)
		}
		if st := stateOf(ctx); st != nil {
			st.setSubject(subject.Digest)
		}
	}
	return got, nil
}

// protectedWrite reports whether storing man (under tag, if not "") can
// make content protected: a protected tag, or a subject, whose referrers
// a protected tag reaches.
func (m *manifests) protectedWrite(man distribution.Manifest, tag string) bool {
	if tag != "" {
		if mode, _ := m.r.e.rules.Match(m.r.name(), tag); mode != immutability.Mutable {
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
	mode, rule := m.r.e.rules.Match(repo, tag)
	if mode == immutability.Mutable {
		return m.ManifestService.Put(ctx, man, options...)
	}
	defer m.r.e.lock(repo, tag)()
	tags := m.r.Repository.Tags(ctx)
	cur, err := tags.Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	switch {
	case errors.As(err, &unknown):
	case err != nil:
		return "", err
	case cur.Digest == dgst:
		// Re-putting what the tag names is idempotent.
	case mode == immutability.Immutable:
		return "", m.r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is immutable (rule %s) and names %s, not %s; push under a new tag", tag, repo, rule.Name, cur.Digest, dgst)})
	default:
		prev, err := m.ManifestService.Get(ctx, cur.Digest)
		if err != nil {
			return "", err
		}
		if missing := dropped(prev, man); len(missing) > 0 {
			return "", m.r.deny(ctx, Denial{Tag: tag, Digest: dgst, Rule: rule.Name,
				Message: fmt.Sprintf("tag %s of %s is append-only (rule %s): the new manifest drops %s of %s; keep every existing entry", tag, repo, rule.Name, missing[0], cur.Digest)})
		}
	}
	got, err := m.ManifestService.Put(ctx, man, options...)
	if err != nil {
		return "", err
	}
	if err := tags.Tag(ctx, tag, v1.Descriptor{MediaType: mediaType, Digest: got, Size: int64(len(payload))}); err != nil {
		return "", err
	}
	if st := stateOf(ctx); st != nil {
		st.setTagged(tag, got)
	}
	return got, nil
}

// appendEntry is one of what append-only protects: its digest and a key made of
// every field of its descriptor.
type appendEntry struct {
	digest digest.Digest
	key    string
}

// entries are what append-only protects: the layers of an image manifest
// (its config changes as layers are added) or the manifests of an index,
// whole descriptors: a cosign signature is a layer annotation, several
// signatures of one payload share the layer digest, and a descriptor's
// embedded data (or platform) is what a client reads instead of the blob.
func entries(m distribution.Manifest) []appendEntry {
	ds, image := layersOf(m)
	switch m := m.(type) {
	case *ocischema.DeserializedImageIndex:
		ds = m.Manifests
	case *manifestlist.DeserializedManifestList:
		out := make([]appendEntry, 0, len(m.Manifests))
		for _, d := range m.Manifests {
			out = append(out, appendEntry{d.Digest, entryKey(d)})
		}
		return out
	default:
		if !image {
			ds = m.References()
		}
	}
	out := make([]appendEntry, 0, len(ds))
	for _, d := range ds {
		out = append(out, appendEntry{d.Digest, entryKey(d)})
	}
	return out
}

// layersOf returns the layers of an image manifest (OCI or Docker) and
// whether m is one.
func layersOf(m distribution.Manifest) ([]v1.Descriptor, bool) {
	switch m := m.(type) {
	case *ocischema.DeserializedManifest:
		return m.Layers, true
	case *schema2.DeserializedManifest:
		return m.Layers, true
	}
	return nil, false
}

// entryKey identifies an appendEntry by everything that describes it: every
// field the image-spec (or, for a Docker manifest list, Distribution)
// defines for a descriptor, annotations, data and platform included.
func entryKey(d any) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// dropped lists the entries of prev that next lacks, counting repeats:
// next must hold every appendEntry of prev, as often as prev does.
func dropped(prev, next distribution.Manifest) []digest.Digest {
	have := map[string]int{}
	for _, e := range entries(next) {
		have[e.key]++
	}
	var out []digest.Digest
	for _, e := range entries(prev) {
		if have[e.key] == 0 {
			out = append(out, e.digest)
			continue
		}
		have[e.key]--
	}
	return out
}

// Delete refuses to delete a manifest that a protected tag reaches:
// the manifest it names, everything an index contains, at any depth, and
// the referrers (signatures, attestations) of all of those.
func (m *manifests) Delete(ctx context.Context, dgst digest.Digest) error {
	defer m.r.e.repos.exclusive(m.r.name())()
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
		return m.r.e.referrers.remove(ctx, m.r.e.log, m.r.name(), subject.Digest, dgst)
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
		mode, rule := r.e.rules.Match(r.name(), t)
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
		refs, err := r.e.referrers.digests(ctx, r.e.log, r.name(), d)
		if err != nil {
			return true, nil
		}
		queue = append(queue, refs...)
	}
	return false, nil
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
	mode, rule := t.r.e.rules.Match(repo, tag)
	if mode == immutability.Mutable {
		return t.TagService.Tag(ctx, tag, desc)
	}
	if st := stateOf(ctx); st != nil && st.alreadyTagged(tag, desc.Digest) {
		return nil
	}
	defer t.r.e.repos.shared(repo)()
	defer t.r.e.lock(repo, tag)()
	cur, err := t.TagService.Get(ctx, tag)
	var unknown distribution.ErrTagUnknown
	switch {
	case errors.As(err, &unknown):
	case err != nil:
		return err
	case cur.Digest == desc.Digest:
		return nil
	case mode == immutability.Immutable:
		return t.r.deny(ctx, Denial{Tag: tag, Digest: desc.Digest, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is immutable (rule %s) and names %s, not %s", tag, repo, rule.Name, cur.Digest, desc.Digest)})
	default:
		ms, err := t.r.Repository.Manifests(ctx)
		if err != nil {
			return err
		}
		prev, err := ms.Get(ctx, cur.Digest)
		if err != nil {
			return err
		}
		next, err := ms.Get(ctx, desc.Digest)
		if err != nil {
			return err
		}
		if missing := dropped(prev, next); len(missing) > 0 {
			return t.r.deny(ctx, Denial{Tag: tag, Digest: desc.Digest, Rule: rule.Name,
				Message: fmt.Sprintf("tag %s of %s is append-only (rule %s): %s drops %s of %s", tag, repo, rule.Name, desc.Digest, missing[0], cur.Digest)})
		}
	}
	return t.TagService.Tag(ctx, tag, desc)
}

// Untag refuses to delete a protected tag.
func (t *tags) Untag(ctx context.Context, tag string) error {
	repo := t.r.name()
	if mode, rule := t.r.e.rules.Match(repo, tag); mode != immutability.Mutable {
		cur, _ := t.TagService.Get(ctx, tag)
		return t.r.deny(ctx, Denial{Tag: tag, Digest: cur.Digest, Rule: rule.Name,
			Message: fmt.Sprintf("tag %s of %s is %s (rule %s) and cannot be deleted", tag, repo, mode, rule.Name)})
	}
	return t.TagService.Untag(ctx, tag)
}

// blobs serves small blobs from memory and refuses to delete blobs that
// protected tags reach.
type blobs struct {
	distribution.BlobStore
	r *repository
}

// Delete refuses to unlink a blob that a protected tag reaches.
func (b *blobs) Delete(ctx context.Context, dgst digest.Digest) error {
	defer b.r.e.repos.exclusive(b.r.name())()
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

// SmallBlobBytes is the size up to which the middleware serves a blob from
// memory. Distribution reads every blob it serves through a 4 MiB buffer;
// workflow blobs, signatures and attestations are a few KiB, and
// allocating (and collecting) 4 MiB for each dominated the registry's CPU.
const SmallBlobBytes = 1 << 20

// blobMaxAge is Distribution's Cache-Control for blobs, which are
// content-addressed.
const blobMaxAge = 365 * 24 * time.Hour

// ServeBlob serves small blobs from memory; HEAD requests and large blobs
// go to Distribution as before.
func (b *blobs) ServeBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, dgst digest.Digest) error {
	if r.Method != http.MethodGet {
		return b.BlobStore.ServeBlob(ctx, w, r, dgst)
	}
	desc, err := b.Stat(ctx, dgst)
	if err != nil {
		return err
	}
	if desc.Size > SmallBlobBytes {
		return b.BlobStore.ServeBlob(ctx, w, r, dgst)
	}
	p, err := b.Get(ctx, dgst)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", fmt.Sprintf(`"%s"`, desc.Digest))
	h.Set("Cache-Control", fmt.Sprintf("max-age=%.f", blobMaxAge.Seconds()))
	if h.Get("Docker-Content-Digest") == "" {
		h.Set("Docker-Content-Digest", desc.Digest.String())
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", desc.MediaType)
	}
	// ServeContent sets Content-Length and answers Range and If-None-Match.
	http.ServeContent(w, r, desc.Digest.String(), time.Time{}, bytes.NewReader(p))
	return nil
}
