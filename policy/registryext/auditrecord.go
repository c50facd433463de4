package registryext

import (
	"mime"
	"net"
	"net/http"
	"strings"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/audit"
)

func mutating(method string) bool {
	switch method {
	case http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete:
		return true
	}
	return false
}

// record appends the audit entry of a mutating request, of a pull the
// lifecycle rule refused and of one it allowed a named reader. Its digest is
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
	op, tag, named := operationOf(r, rt)
	e.Operation, e.Tag = op, tag
	switch {
	case rt.kind == "manifests" && op == "manifest-put":
		e.PredicateTypes = w.st.predicateTypes()
	case rt.kind != "manifests" && rt.kind != "uploads" && rt.kind != "blobs":
		e.Message = r.URL.Path
	}
	g := w.st.grantedRead()
	switch {
	case d != nil:
		if d.Digest != "" {
			e.Digest = d.Digest.String()
		}
		e.Asked = named
	case g != nil:
		e.Rule, e.Message, e.Digest = g.Rule, g.Message, g.Digest.String()
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

// operationOf names what request r does on route rt, as the audit log and
// alerts name it (manifest-put, manifest-get, manifest-head,
// manifest-delete, tag-delete, blob-upload, blob-upload-cancel,
// blob-delete, or METHOD-KIND), and returns the tag and the digest the
// request names, if any.
func operationOf(r *http.Request, rt route) (op, tag, named string) {
	switch rt.kind {
	case "manifests":
		switch r.Method {
		case http.MethodDelete:
			op = "manifest-delete"
		case http.MethodGet, http.MethodHead:
			op = "manifest-" + strings.ToLower(r.Method)
		default:
			op = "manifest-put"
		}
		if digest.Digest(rt.ref).Validate() == nil {
			named = rt.ref
		} else {
			tag = rt.ref
			if r.Method == http.MethodDelete {
				op = "tag-delete"
			}
		}
	case "uploads":
		op = "blob-upload"
		if r.Method == http.MethodDelete {
			op = "blob-upload-cancel" // removes no blob, whatever the query says
			break
		}
		q := r.URL.Query()
		if named = q.Get("digest"); named == "" {
			named = q.Get("mount")
		}
	case "blobs":
		op = "blob-delete"
		named = rt.ref
	default:
		op = strings.ToLower(r.Method) + "-" + rt.kind
	}
	return op, tag, named
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
