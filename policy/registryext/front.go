package registryext

import (
	"context"
	"encoding/json"
	"mime"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/audit"
)

// requestState is what the middleware tells the front about one request.
type requestState struct {
	mu      sync.Mutex
	denial  *Denial
	subject digest.Digest // of a manifest stored with a subject
	tagged  string        // tag@digest the middleware's Put tagged
	actor   string        // the user Distribution authenticated
}

type stateKey struct{}

// stateOf returns the state of the request ctx belongs to, or nil.
// Distribution derives its handler contexts from the request's.
func stateOf(ctx context.Context) *requestState {
	st, _ := ctx.Value(stateKey{}).(*requestState)
	return st
}

func (s *requestState) setDenial(d Denial) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.denial == nil {
		s.denial = &d
	}
}

func (s *requestState) setSubject(d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subject = d
}

// distributionUserName is the context key under which Distribution's
// handlers put the authenticated user's name (registry/handlers).
const distributionUserName = "auth.user.name"

// noteUser records the user Distribution authenticated, from a context it
// derived for the request.
func (s *requestState) noteUser(ctx context.Context) {
	name, _ := ctx.Value(distributionUserName).(string)
	if name == "" {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.actor = name
}

func (s *requestState) user() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.actor
}

func (s *requestState) setTagged(tag string, d digest.Digest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tagged = tag + "@" + d.String()
}

func (s *requestState) alreadyTagged(tag string, d digest.Digest) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tagged == tag+"@"+d.String()
}

func (s *requestState) subjectOf() digest.Digest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subject
}

func (s *requestState) denied() *Denial {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.denial
}

// route is what a /v2/ path names.
type route struct {
	repo, kind, ref string // kind: manifests, blobs, uploads, referrers
}

// Routes as Distribution's router matches them (registry/api/v2): the
// name is a repository name, never a path with "." or ".." components.
var (
	nameRe      = "(" + reference.NameRegexp.String() + ")"
	uploadsRe   = regexp.MustCompile(`^/v2/` + nameRe + `/blobs/uploads/?([^/]*)$`)
	manifestsRe = regexp.MustCompile(`^/v2/` + nameRe + `/manifests/(` + reference.TagRegexp.String() + `|` + reference.DigestRegexp.String() + `)$`)
	blobsRe     = regexp.MustCompile(`^/v2/` + nameRe + `/blobs/(` + reference.DigestRegexp.String() + `)$`)
	referrersRe = regexp.MustCompile(`^/v2/` + nameRe + `/referrers/([^/]+)$`)
)

// parseRoute splits /v2/NAME/manifests/REF, /v2/NAME/blobs/DIGEST,
// /v2/NAME/blobs/uploads/[ID] and /v2/NAME/referrers/DIGEST; prefix is
// Distribution's http.prefix.
func parseRoute(prefix, path string) (route, bool) {
	path = strings.TrimPrefix(path, strings.TrimSuffix(prefix, "/"))
	for _, r := range []struct {
		re   *regexp.Regexp
		kind string
	}{{uploadsRe, "uploads"}, {manifestsRe, "manifests"}, {blobsRe, "blobs"}, {referrersRe, "referrers"}} {
		if m := r.re.FindStringSubmatch(path); m != nil {
			return route{repo: m[1], kind: r.kind, ref: m[len(m)-1]}, true
		}
	}
	return route{}, false
}

// recorder captures the status and, when the middleware denied the
// request, replaces Distribution's error response (for deletes a generic
// 500 or 405, for pushes a 403 with the message only) with 403 DENIED, the
// reason and its details.
type recorder struct {
	http.ResponseWriter
	st        *requestState
	status    int
	rewritten bool
}

func (w *recorder) WriteHeader(code int) {
	if w.status != 0 {
		return
	}
	w.status = code
	if d := w.st.denied(); d != nil && code >= 400 {
		w.rewritten = true
		w.status = http.StatusForbidden
		body, _ := json.Marshal(map[string]any{"errors": []map[string]any{{
			"code": "DENIED", "message": d.Message,
			"detail": map[string]string{"repository": d.Repository, "tag": d.Tag, "digest": d.Digest.String(), "rule": d.Rule},
		}}})
		h := w.ResponseWriter.Header()
		h.Set("Content-Type", "application/json")
		h.Del("Content-Length")
		w.ResponseWriter.WriteHeader(http.StatusForbidden)
		_, _ = w.ResponseWriter.Write(body)
		return
	}
	if sub := w.st.subjectOf(); sub != "" && code == http.StatusCreated {
		w.ResponseWriter.Header().Set("OCI-Subject", sub.String())
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.rewritten {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the underlying writer.
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes flushes through (Distribution streams some responses).
func (w *recorder) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok && !w.rewritten {
		f.Flush()
	}
}

func mutating(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// front wraps Distribution: it gives each request a state the middleware
// reports denials through, counts requests and audits every mutating one.
func (s *Server) front(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &requestState{}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		rw := &recorder{ResponseWriter: w, st: st}
		if rt, ok := parseRoute(s.prefix, r.URL.Path); ok && rt.kind == "referrers" {
			addHeaders(rw.Header(), s.headers)
			s.serveReferrers(rw, r, rt)
			s.metrics.request(r.Method, rw.status)
			return
		}
		next.ServeHTTP(rw, r)
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		s.metrics.request(r.Method, rw.status)
		if mutating(r.Method) {
			s.record(r, rw, st.denied())
		}
	})
}

// record appends the audit entry of a mutating request. Its digest is
// what the request committed or removed, as Distribution answered it: the
// Docker-Content-Digest of a 201 (Distribution reads an upload's digest
// from a form body before the query, so the query may name another), the
// digest a successful delete names; for a denial, the digest the rule
// refused. A digest the request named without committing or removing it
// is recorded as asked.
func (s *Server) record(r *http.Request, w *recorder, d *Denial) {
	if s.audit == nil {
		return
	}
	rt, ok := parseRoute(s.prefix, r.URL.Path)
	if !ok {
		// Distribution answers no other mutating route; record it anyway.
		rt = route{kind: "unknown", ref: r.URL.Path}
	}
	e := audit.Entry{Actor: actor(r, w.st), Repository: rt.repo, Status: w.status, Outcome: audit.OK}
	switch {
	case d != nil:
		e.Outcome, e.Rule, e.Message = audit.Denied, d.Rule, d.Message
	case w.status >= 400:
		e.Outcome = audit.Failed
	}
	var named string // the digest the request names
	switch rt.kind {
	case "manifests":
		e.Operation = "manifest-put"
		if r.Method == http.MethodDelete {
			e.Operation = "manifest-delete"
		}
		if digest.Digest(rt.ref).Validate() == nil {
			named = rt.ref
		} else {
			e.Tag = rt.ref
			if r.Method == http.MethodDelete {
				e.Operation = "tag-delete"
			}
		}
	case "uploads":
		e.Operation = "blob-upload"
		if r.Method == http.MethodDelete {
			e.Operation = "blob-upload-cancel" // removes no blob, whatever the query says
			break
		}
		q := r.URL.Query()
		if named = q.Get("digest"); named == "" {
			named = q.Get("mount")
		}
	case "blobs":
		e.Operation = "blob-delete"
		named = rt.ref
	default:
		e.Operation = strings.ToLower(r.Method) + "-" + rt.kind
		e.Message = r.URL.Path
	}
	switch {
	case d != nil:
		if d.Digest != "" {
			e.Digest = d.Digest.String()
		}
		e.Asked = named
	case w.status == http.StatusCreated && w.Header().Get("Docker-Content-Digest") != "":
		e.Digest = w.Header().Get("Docker-Content-Digest")
	case r.Method == http.MethodDelete && w.status < 300:
		e.Digest = named
	default:
		e.Asked = named
		if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); rt.kind == "uploads" && ct == "application/x-www-form-urlencoded" {
			e.Message = "the body is a form, whose digest Distribution reads before the query's; asked is the query's"
		}
	}
	if err := s.audit.Append(e); err != nil {
		s.metrics.auditErrs.Inc()
		s.log.Error("audit log: a mutating request went unrecorded", "err", err, "repository", e.Repository, "operation", e.Operation)
		return
	}
	s.metrics.audited.Inc()
}

// actor is the user Distribution authenticated the request as, or the
// client's address. A claimed user name that Distribution did not
// authenticate (no auth configured, a refused login) is not recorded.
func actor(r *http.Request, st *requestState) string {
	if u := st.user(); u != "" {
		return u
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	return host
}
