package registryext

import (
	"context"
	"net/http"
)

// wrapDistribution wraps Distribution: it gives each request a state the middleware
// reports denials through, counts requests, audits every mutating one and raises an alert for
// each it refused.
func (s *Server) wrapDistribution(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := &requestState{}
		r = r.WithContext(context.WithValue(r.Context(), stateKey{}, st))
		rw := &recorder{ResponseWriter: w, st: st}
		rt, ok := parseRoute(s.prefix, r.URL.Path)
		if ok && rt.kind == "referrers" {
			addHeaders(rw.Header(), s.headers)
			s.serveReferrers(rw, r, rt)
			s.metrics.request(r.Method, rw.status)
			return
		}
		if ok && rt.kind == "manifests" && r.Method == http.MethodGet && s.reads != nil {
			st.pull = true
			// Distribution answers a matching If-None-Match with 304
			// before it reads the manifest, which would skip the rule.
			r.Header.Del("If-None-Match")
		}
		next.ServeHTTP(rw, r)
		if rw.status == 0 {
			rw.status = http.StatusOK
		}
		s.metrics.request(r.Method, rw.status)
		d := st.denied()
		if mutating(r.Method) || d != nil || st.grantedRead() != nil {
			s.record(r, rw, d)
		}
		if d != nil {
			s.alert(r, st, d)
		}
	})
}
