package store

import (
	"bytes"
	"fmt"
	"io"
	"net/http"

	"ociwf.dev/ociwf/errdef"
)

// Limits on what is read from a registry for signatures and attestations,
// so that a hostile registry cannot exhaust memory: cosign's readers keep
// whole manifests and layers in memory.
const (
	// MaxAccessoryBytes bounds one response: a signature or attestation
	// manifest, a layer. A referrers page is bounded tighter, by the
	// transport (target.MaxReferrersPageBytes).
	MaxAccessoryBytes = 32 << 20
	// MaxReferrers bounds the referrers of one subject that are read.
	MaxReferrers = 1000
	// MaxSignatures bounds the signatures or attestations read from one
	// manifest (a cosign tag or a referrer).
	MaxSignatures = 1000
	// MaxErrorBodyBytes bounds the body of an error response that is read:
	// the rest is dropped, so the error reports the status and what fits.
	MaxErrorBodyBytes = 64 << 10
)

// bounded fails responses over MaxAccessoryBytes, by their Content-Length
// or while they are read, and reads at most MaxErrorBodyBytes of an error
// response (status 400 or more) before releasing its connection.
type bounded struct{ next http.RoundTripper }

func (b bounded) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := b.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= http.StatusBadRequest {
		// Read now, and the connection released: go-containerregistry's
		// retries read an error body without closing it.
		b, _ := io.ReadAll(io.LimitReader(resp.Body, MaxErrorBodyBytes))
		resp.Body.Close()
		resp.Body, resp.ContentLength = io.NopCloser(bytes.NewReader(b)), int64(len(b))
		return resp, nil
	}
	if resp.ContentLength > MaxAccessoryBytes {
		resp.Body.Close()
		return nil, fmt.Errorf("%s %s: response of %d bytes, over the %d byte limit for signatures and attestations: %w", req.Method, req.URL.Redacted(), resp.ContentLength, MaxAccessoryBytes, errdef.ErrTooLarge)
	}
	resp.Body = &limitedBody{rc: resp.Body, left: MaxAccessoryBytes, url: req.URL.Redacted()}
	return resp, nil
}

type limitedBody struct {
	rc   io.ReadCloser
	left int64
	url  string
}

func (l *limitedBody) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a body that ends exactly at the limit from
		// one that goes on.
		var one [1]byte
		if n, _ := l.rc.Read(one[:]); n > 0 {
			return 0, fmt.Errorf("%s: response over the %d byte limit for signatures and attestations: %w", l.url, MaxAccessoryBytes, errdef.ErrTooLarge)
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.rc.Read(p)
	l.left -= int64(n)
	return n, err
}

func (l *limitedBody) Close() error { return l.rc.Close() }
