package registryext

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/semaphore"
)

// referrers indexes manifests by their subject, in the registry's storage
// next to Distribution's own data, for the OCI 1.1 referrers API that
// Distribution 3.1.2 lacks. One small file per (subject, referrer) holds
// the referrer's descriptor, so concurrent pushes never rewrite a shared
// file:
//
//	/ociwf/v2/referrers/<repository>/_subjects/<alg>/<hex>/<alg>-<hex>
//
// A component of a repository name never starts with "_"
// (reference.NameRegexp), so the first "_subjects" ends the repository
// part of every path, as "_manifests" does in Distribution's own layout:
// no repository name, however nested, reaches another repository's
// entries. The zero value (with d set) is ready to use.
type referrers struct {
	d storagedriver.StorageDriver
	// pageBytes and pageCount bound one response of the referrers API;
	// zero means defaultPageBytes and defaultPageCount.
	pageBytes int64
	pageCount int

	mu       sync.Mutex  // held while the legacy index is migrated
	migrated atomic.Bool // the legacy index has been migrated
	reads    *semaphore.Weighted
}

const (
	// referrersRoot is where the index lives in the storage driver.
	referrersRoot = "/ociwf/v2/referrers"
	// legacyReferrersRoot is where ociwf kept the index before, at
	// <root>/<repo>/<alg>/<hex>/<alg>-<hex>, a path one repository's name
	// could reach into another's ("a/sha256/<hex>"). It is migrated into
	// referrersRoot before the index is first used.
	legacyReferrersRoot = "/ociwf/v1/referrers"
	subjectsDir         = "_subjects"

	// defaultPageBytes bounds a referrers response: oras-go refuses
	// responses over 4 MiB (MaxMetadataBytes), and clients that do not
	// paginate (go-containerregistry, hence cosign) see the first page
	// only; ordinary signatures and attestations take a few hundred bytes
	// each, so thousands fit.
	defaultPageBytes = 4 << 20
	// defaultPageCount bounds the descriptors of a response, and with them
	// the storage reads of one request; it matches the 1,000 signatures or
	// attestations ociwf's clients read for one manifest.
	defaultPageCount = 1000
	// maxEntryBytes bounds an index entry: a descriptor is smaller than
	// the manifest it describes (Distribution takes at most 4 MiB), up to
	// three times that once invalid UTF-8 is replaced. A larger file is
	// none of ours and is skipped.
	maxEntryBytes = 16 << 20
	// maxReadBytes bounds the index entries being read and encoded at once,
	// over all requests.
	maxReadBytes = 64 << 20
)

func (x *referrers) dir(repo string, subject digest.Digest) string {
	return path.Join(referrersRoot, repo, subjectsDir, subject.Algorithm().String(), subject.Encoded())
}

func (x *referrers) file(repo string, subject, referrer digest.Digest) string {
	return path.Join(x.dir(repo, subject), entryName(referrer))
}

// entryName is the file name of a referrer's entry.
func entryName(referrer digest.Digest) string {
	return referrer.Algorithm().String() + "-" + referrer.Encoded()
}

// parseEntryName is the referrer an entry's file name names.
func parseEntryName(name string) (digest.Digest, bool) {
	alg, hex, ok := strings.Cut(name, "-")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// manifestHead is the part of a manifest or index the referrers API needs.
type manifestHead struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// subjectOf decodes a manifest's subject and its descriptor as a referrer.
func subjectOf(mediaType string, payload []byte) (*v1.Descriptor, v1.Descriptor, bool) {
	var h manifestHead
	if json.Unmarshal(payload, &h) != nil || h.Subject == nil || h.Subject.Digest.Validate() != nil {
		return nil, v1.Descriptor{}, false
	}
	if h.MediaType != "" {
		mediaType = h.MediaType
	}
	desc := v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(payload), Size: int64(len(payload)), ArtifactType: h.ArtifactType, Annotations: h.Annotations}
	if desc.ArtifactType == "" && h.Config != nil {
		desc.ArtifactType = h.Config.MediaType
	}
	return h.Subject, desc, true
}

// encodeJSON encodes v without escaping HTML: a descriptor is served as it
// was pushed, not six times larger for each "<".
func encodeJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}

// ready migrates the legacy index, once, before the index is first used;
// a migration that fails is tried again by the next use.
func (x *referrers) ready(ctx context.Context, log *slog.Logger) error {
	if x.migrated.Load() {
		return nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.migrated.Load() {
		return nil
	}
	if x.reads == nil { // before any entry is read: read follows page
		x.reads = semaphore.NewWeighted(maxReadBytes)
	}
	// The migration is the registry's, not the request's that came first.
	if err := x.migrate(context.WithoutCancel(ctx), log); err != nil {
		return fmt.Errorf("migrate the referrers index from %s: %w", legacyReferrersRoot, err)
	}
	x.migrated.Store(true)
	return nil
}

func (x *referrers) put(ctx context.Context, repo string, subject digest.Digest, desc v1.Descriptor) error {
	b, err := encodeJSON(desc)
	if err != nil {
		return err
	}
	return x.d.PutContent(ctx, x.file(repo, subject, desc.Digest), b)
}

func (x *referrers) add(ctx context.Context, log *slog.Logger, repo string, subject digest.Digest, desc v1.Descriptor) error {
	if err := x.ready(ctx, log); err != nil {
		return err
	}
	return x.put(ctx, repo, subject, desc)
}

func (x *referrers) remove(ctx context.Context, log *slog.Logger, repo string, subject, referrer digest.Digest) error {
	if err := x.ready(ctx, log); err != nil {
		return err
	}
	err := x.d.Delete(ctx, x.file(repo, subject, referrer))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

// names returns the paths of subject's entries in repo, sorted.
func (x *referrers) names(ctx context.Context, log *slog.Logger, repo string, subject digest.Digest) ([]string, error) {
	if err := x.ready(ctx, log); err != nil {
		return nil, err
	}
	files, err := x.d.List(ctx, x.dir(repo, subject))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	return files, nil
}

// digests returns the referrers of subject in repo, as the entries' names
// say; their content is not read.
func (x *referrers) digests(ctx context.Context, log *slog.Logger, repo string, subject digest.Digest) ([]digest.Digest, error) {
	files, err := x.names(ctx, log, repo, subject)
	if err != nil {
		return nil, err
	}
	out := make([]digest.Digest, 0, len(files))
	for _, f := range files {
		d, ok := parseEntryName(path.Base(f))
		if !ok {
			log.Warn("referrers index: skipped an entry that names no digest", "path", f)
			continue
		}
		out = append(out, d)
	}
	return out, nil
}

// page is the part of the index one response lists.
type page struct {
	entries []entry
	more    bool // entries follow the last
}

type entry struct {
	path     string
	referrer digest.Digest
	size     int64
}

// Framing of the image index a response streams.
const (
	indexHead = `{"schemaVersion":2,"mediaType":"` + v1.MediaTypeImageIndex + `","manifests":[`
	indexTail = `]}`
)

// page chooses the entries of subject's referrers in repo that one
// response lists: in the order of their names, after the entry of after
// (if set), at most limit of them and, but for a first one larger than
// that, no more than the page bound in bytes of index. Only their sizes are
// read here.
func (x *referrers) page(ctx context.Context, log *slog.Logger, repo string, subject, after digest.Digest, limit int) (page, error) {
	var p page
	if limit == 0 {
		return p, nil
	}
	files, err := x.names(ctx, log, repo, subject)
	if err != nil {
		return p, err
	}
	if after != "" {
		cursor := x.file(repo, subject, after)
		files = files[firstAfter(files, cursor):]
	}
	maxBytes := x.pageBytes
	if maxBytes <= 0 {
		maxBytes = defaultPageBytes
	}
	used := int64(len(indexHead) + len(indexTail))
	for _, f := range files {
		if len(p.entries) == limit {
			p.more = true
			break
		}
		referrer, ok := parseEntryName(path.Base(f))
		if !ok {
			log.Warn("referrers index: skipped an entry that names no digest", "path", f)
			continue
		}
		fi, err := x.d.Stat(ctx, f)
		var nf storagedriver.PathNotFoundError
		switch {
		case errors.As(err, &nf):
			continue // removed meanwhile
		case err != nil:
			return p, err
		case fi.IsDir() || fi.Size() > maxEntryBytes:
			log.Warn("referrers index: skipped an entry that is not a descriptor", "path", f, "size", fi.Size(), "dir", fi.IsDir())
			continue
		}
		if len(p.entries) > 0 && used+fi.Size()+1 > maxBytes {
			p.more = true
			break
		}
		used += fi.Size() + 1
		p.entries = append(p.entries, entry{path: f, referrer: referrer, size: fi.Size()})
	}
	return p, nil
}

// firstAfter returns the index of the first name after cursor in sorted
// names.
func firstAfter(names []string, cursor string) int {
	i, found := slices.BinarySearch(names, cursor)
	if found {
		i++
	}
	return i
}

// stream reads the entries of p, one at a time, and passes each one's
// descriptor to emit, leaving out those of another artifact
// type than artifactType (if set). An entry that no longer exists is left
// out; one that is not the descriptor its name says is logged and left
// out.
func (x *referrers) stream(ctx context.Context, log *slog.Logger, p page, artifactType string, emit func([]byte) error) error {
	for _, e := range p.entries {
		b, err := x.read(ctx, log, e, artifactType)
		if err != nil {
			return err
		}
		if b == nil {
			continue
		}
		if err := emit(b); err != nil {
			return err
		}
	}
	return nil
}

// read returns an entry's descriptor as stored, or nil to leave it out.
// The entry must decode as the descriptor of the referrer its name says;
// what is passed on is what was read, one JSON object, without decoding
// its annotations. At most maxReadBytes of entries are being read at once
// over all requests; while one is written out, its request holds about
// one manifest's worth, as a manifest GET does.
func (x *referrers) read(ctx context.Context, log *slog.Logger, e entry, artifactType string) ([]byte, error) {
	weight := min(max(e.size, 1), maxReadBytes)
	if err := x.reads.Acquire(ctx, weight); err != nil {
		return nil, err
	}
	defer x.reads.Release(weight)
	b, err := x.d.GetContent(ctx, e.path)
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, nil // removed meanwhile
	}
	if err != nil {
		return nil, err
	}
	var d struct {
		MediaType    string        `json:"mediaType"`
		Digest       digest.Digest `json:"digest"`
		Size         int64         `json:"size"`
		ArtifactType string        `json:"artifactType"`
	}
	if err := json.Unmarshal(b, &d); err != nil || d.Digest != e.referrer || d.MediaType == "" || d.Size <= 0 {
		log.Warn("referrers index: skipped an entry that is not the descriptor its name says", "path", e.path, "err", err)
		return nil, nil
	}
	if artifactType != "" && d.ArtifactType != artifactType {
		return nil, nil
	}
	return b, nil
}

// migrate carries the index at legacyReferrersRoot over into
// referrersRoot and deletes it. Each entry is checked against the
// manifest it names, which must be stored in that repository with that
// subject; the descriptor is rebuilt from the manifest. Entries that do
// not check out are dropped. An entry whose manifest cannot be read for
// now (a storage error) stops the migration, to be tried again; entries
// done by then are not done twice.
func (x *referrers) migrate(ctx context.Context, log *slog.Logger) error {
	var ns distribution.Namespace
	kept, dropped := 0, 0
	err := x.d.Walk(ctx, legacyReferrersRoot, func(fi storagedriver.FileInfo) error {
		if fi.IsDir() {
			return nil
		}
		if ns == nil {
			var err error
			if ns, err = storage.NewRegistry(ctx, x.d); err != nil {
				return err
			}
		}
		desc, repo, subject, ok, err := legacyEntry(ctx, ns, fi.Path())
		if err != nil {
			return err
		}
		if ok {
			if err := x.put(ctx, repo, subject, desc); err != nil {
				return err
			}
			kept++
		} else {
			log.Warn("referrers index: dropped an entry of the first layout that does not check out against its manifest", "path", fi.Path())
			dropped++
		}
		if err := x.d.Delete(ctx, fi.Path()); err != nil {
			var nf storagedriver.PathNotFoundError
			if !errors.As(err, &nf) {
				return err
			}
		}
		return nil
	})
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) && nf.Path == legacyReferrersRoot {
		return nil // nothing to migrate
	}
	if err != nil {
		return err
	}
	if err := x.d.Delete(ctx, legacyReferrersRoot); err != nil && !errors.As(err, &nf) {
		return err
	}
	if kept+dropped > 0 {
		log.Info("referrers index: migrated to the current layout", "kept", kept, "dropped", dropped)
	}
	return nil
}

// legacyEntry checks the entry of the first layout at p
// (<legacy root>/<repo>/<alg>/<hex>/<alg>-<hex>) against the manifest it
// names, and returns the referrer's descriptor, its repository and
// subject, and whether it checks out. err is set only when the manifest
// cannot be read for now.
func legacyEntry(ctx context.Context, ns distribution.Namespace, p string) (desc v1.Descriptor, repo string, subject digest.Digest, ok bool, err error) {
	parts := strings.Split(strings.TrimPrefix(p, legacyReferrersRoot+"/"), "/")
	n := len(parts)
	if n < 4 {
		return desc, "", "", false, nil
	}
	repo = strings.Join(parts[:n-3], "/")
	subject = digest.NewDigestFromEncoded(digest.Algorithm(parts[n-3]), parts[n-2])
	referrer, okName := parseEntryName(parts[n-1])
	named, errName := reference.WithName(repo)
	if !okName || errName != nil || subject.Validate() != nil {
		return desc, "", "", false, nil
	}
	r, err := ns.Repository(ctx, named)
	if err != nil {
		return desc, "", "", false, nil
	}
	ms, err := r.Manifests(ctx)
	if err != nil {
		return desc, "", "", false, err
	}
	man, err := ms.Get(ctx, referrer)
	var driverErr storagedriver.Error
	switch {
	case errors.As(err, &driverErr), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return desc, "", "", false, err
	case err != nil:
		return desc, "", "", false, nil // unknown here, or not a manifest
	}
	mediaType, payload, err := man.Payload()
	if err != nil {
		return desc, "", "", false, nil
	}
	s, desc, found := subjectOf(mediaType, payload)
	if !found || s.Digest != subject || desc.Digest != referrer {
		return v1.Descriptor{}, "", "", false, nil
	}
	return desc, repo, subject, true, nil
}

// ociError writes an OCI error response.
func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	_, _ = w.Write(b)
}

// serveReferrers answers GET /v2/NAME/referrers/DIGEST[?artifactType=T]
// with an image index of the manifests whose subject is DIGEST, after the
// same access check Distribution makes for a pull. The index comes in
// pages in digest order, each bounded in bytes and descriptors (n, if
// given, bounds the count further); a page with more after it has a Link
// header (rel="next") to the rest, which continues after the last
// descriptor listed (?last=DIGEST). Descriptors are read and written one
// at a time.
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ociError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the referrers API is read-only")
		return
	}
	if s.access != nil {
		_, err := s.access.Authorized(r, auth.Access{Resource: auth.Resource{Type: "repository", Name: rt.repo}, Action: "pull"})
		if err != nil {
			var ch auth.Challenge
			if errors.As(err, &ch) {
				ch.SetHeaders(r, w)
			}
			ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	subject := digest.Digest(rt.ref)
	if err := subject.Validate(); err != nil {
		ociError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q: %v", rt.ref, err))
		return
	}
	q := r.URL.Query()
	limit := s.referrers.pageCount
	if limit <= 0 {
		limit = defaultPageCount
	}
	if n := q.Get("n"); n != "" {
		v, err := strconv.Atoi(n)
		if err != nil || v < 0 {
			ociError(w, http.StatusBadRequest, "PAGINATION_NUMBER_INVALID", fmt.Sprintf("invalid number of results %q", n))
			return
		}
		limit = min(limit, v)
	}
	after := digest.Digest(q.Get("last"))
	if after != "" {
		if err := after.Validate(); err != nil {
			ociError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid last digest %q: %v", after, err))
			return
		}
	}
	ctx := r.Context()
	p, err := s.referrers.page(ctx, s.log, rt.repo, subject, after, limit)
	if err != nil {
		s.log.Error("referrers", "repository", rt.repo, "subject", subject.String(), "err", err)
		ociError(w, http.StatusInternalServerError, "UNKNOWN", "reading the referrers index failed")
		return
	}
	h := w.Header()
	h.Set("Content-Type", v1.MediaTypeImageIndex)
	at := q.Get("artifactType")
	if at != "" {
		h.Set("OCI-Filters-Applied", "artifactType")
	}
	if p.more {
		q.Set("last", p.entries[len(p.entries)-1].referrer.String())
		next := url.URL{Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: q.Encode()}
		h.Set("Link", fmt.Sprintf("<%s>; rel=\"next\"", next.String()))
	}
	w.WriteHeader(http.StatusOK)
	s.metrics.referrers.Inc()
	if r.Method != http.MethodGet {
		return
	}
	if _, err := io.WriteString(w, indexHead); err != nil {
		return
	}
	first := true
	err = s.referrers.stream(ctx, s.log, p, at, func(b []byte) error {
		if !first {
			if _, err := w.Write([]byte{','}); err != nil {
				return err
			}
		}
		first = false
		_, err := w.Write(b)
		return err
	})
	if err != nil {
		// The status is sent: end the body short of a whole index, so
		// the client fails rather than take a partial list for all.
		s.log.Error("referrers: response cut short", "repository", rt.repo, "subject", subject.String(), "err", err)
		return
	}
	_, _ = io.WriteString(w, indexTail)
}
