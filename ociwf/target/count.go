package target

import (
	"context"
	"net/http"
	"sync/atomic"
)

type counterKey struct{}

// CountRequests returns a context under which the HTTP requests sent
// through any Opener's transport are counted (retries included), and a
// function that reads the count so far.
func CountRequests(ctx context.Context) (context.Context, func() int64) {
	n := new(atomic.Int64)
	return context.WithValue(ctx, counterKey{}, n), n.Load
}

// counting counts requests whose context carries a counter.
type counting struct{ next http.RoundTripper }

func (c counting) RoundTrip(req *http.Request) (*http.Response, error) {
	if n, ok := req.Context().Value(counterKey{}).(*atomic.Int64); ok {
		n.Add(1)
	}
	return c.next.RoundTrip(req)
}
