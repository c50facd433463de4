package registryext

import (
	"context"
	"net/http"
)

// wrapDistribution wraps Distribution: it gives each request a state the middleware
// reports denials through, counts requests and audits every mutating one.
func (s *Server) wrapDistribution(next http.Handler) http.Handler {
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
