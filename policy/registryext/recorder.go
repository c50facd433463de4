package registryext

import (
	"encoding/json"
	"net/http"

	"github.com/distribution/distribution/v3/registry/api/errcode"
)

// recorder captures the status and, when the middleware denied the
// request, replaces Distribution's error response (for deletes a generic
// 500 or 405, for pushes a 403 with the message only) with 403 DENIED, the
// reason and its details; when coordination failed, a generic 500 (a
// manifest delete by digest) with 503 UNAVAILABLE and the cause.
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
			"detail": d.detail(),
		}}})
		h := w.ResponseWriter.Header()
		h.Set("Content-Type", "application/json")
		h.Del("Content-Length")
		w.ResponseWriter.WriteHeader(http.StatusForbidden)
		_, _ = w.ResponseWriter.Write(body)
		return
	}
	if err := w.st.unavailableErr(); err != nil && code == http.StatusInternalServerError {
		w.rewritten = true
		w.status = http.StatusServiceUnavailable
		body, _ := json.Marshal(errcode.Errors{err})
		h := w.ResponseWriter.Header()
		h.Set("Content-Type", "application/json")
		h.Del("Content-Length")
		w.ResponseWriter.WriteHeader(http.StatusServiceUnavailable)
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
