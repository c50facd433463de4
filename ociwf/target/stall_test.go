package target_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest/faults"
)

// bounded is fast() with a short per-attempt bound.
func bounded() target.RetryPolicy {
	p := fast()
	p.AttemptTimeout = 200 * time.Millisecond
	return p
}

func TestRetryStalledAttempt(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(ok))
	t.Cleanup(up.Close)
	proxy := faults.Start(t, strings.TrimPrefix(up.URL, "http://"))
	proxy.Set(faults.Rule{Method: "GET", Nth: 1, Action: faults.Stall})
	resp, err := do(t, bounded(), http.MethodGet, "http://"+proxy.Addr()+"/v2/r/manifests/1.0.0", nil, 0)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET stalled once: %v %v", resp, err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "done" || proxy.Fired() != 1 {
		t.Fatalf("GET stalled once: %q %v, %d faults", b, err, proxy.Fired())
	}

	// A registry that never answers: every attempt is cut at the bound.
	proxy.Set(faults.Rule{Action: faults.Stall})
	_, err = do(t, bounded(), http.MethodGet, "http://"+proxy.Addr()+"/v2/r/manifests/1.0.0", nil, 0)
	if !errors.Is(err, errdef.ErrUnavailable) || !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "stopped answering") || !strings.Contains(err.Error(), "200ms") {
		t.Fatalf("GET against a stalled registry: %v", err)
	}
}

func TestRetryStalledBody(t *testing.T) {
	const body = "the first half|the second half"
	var seen atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "30")
		w.Header().Set("Docker-Content-Digest", digest.FromString(body).String())
		if seen.Add(1) == 1 {
			io.WriteString(w, body[:15])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	resp, err := do(t, bounded(), http.MethodGet, srv.URL+"/v2/r/manifests/1.0.0", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != body || seen.Load() != 2 {
		t.Fatalf("body stalled once: %q %v after %d requests", b, err, seen.Load())
	}
}

// freeAddr returns a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

func TestRetryRefusedConnection(t *testing.T) {
	p := target.DefaultRetryPolicy()
	p.Backoff, p.MaxWait, p.MaxRetries = 100*time.Millisecond, 300*time.Millisecond, 15
	addr := freeAddr(t)
	done := make(chan struct{})
	go func() {
		defer close(done)
		time.Sleep(time.Second)
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Error(err)
			return
		}
		srv := &http.Server{Handler: http.HandlerFunc(ok)}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}()
	// A PATCH is not idempotent, but a refused connection sent nothing.
	for _, method := range []string{http.MethodGet, http.MethodPatch} {
		resp, err := do(t, p, method, "http://"+addr+"/v2/r/blobs/uploads/x", strings.NewReader("chunk"), 5)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s while the registry restarts: %v %v", method, resp, err)
		}
	}
	<-done

	gone := freeAddr(t)
	_, err := do(t, fast(), http.MethodPatch, "http://"+gone+"/v2/r/blobs/uploads/x", strings.NewReader("chunk"), 5)
	if !errors.Is(err, errdef.ErrUnavailable) || !strings.Contains(err.Error(), gone) || !strings.Contains(err.Error(), "3 attempts") || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("PATCH to a registry that is gone: %v", err)
	}
}

func TestRetryAfterPastTheDeadline(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(ok))
	t.Cleanup(up.Close)
	proxy := faults.Start(t, strings.TrimPrefix(up.URL, "http://"))
	proxy.Set(faults.Rule{Action: faults.TooMany, RetryAfter: "30"})
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxy.Addr()+"/v2/r/tags/list", nil)
	_, err := (&http.Client{Transport: target.RetryTransport(nil, fast())}).Do(req)
	if !errors.Is(err, errdef.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) || proxy.Fired() != 1 ||
		!strings.Contains(err.Error(), "1 attempt,") || !strings.Contains(err.Error(), "429") || !strings.Contains(err.Error(), "Retry-After 30s") {
		t.Fatalf("429 Retry-After past the deadline: %v after %d requests", err, proxy.Fired())
	}

	// With retries spent on 429s, the count is of the attempts made.
	proxy.Set(faults.Rule{Action: faults.TooMany, RetryAfter: "0"})
	_, err = do(t, fast(), http.MethodGet, "http://"+proxy.Addr()+"/v2/r/tags/list", nil, 0)
	if !errors.Is(err, errdef.ErrUnavailable) || proxy.Fired() != 4 || !strings.Contains(err.Error(), "answered 429 Too Many Requests after 3 attempts") {
		t.Fatalf("429s to the last retry: %v after %d requests", err, proxy.Fired())
	}
}

func TestRetryGivesUpOnAnEmptyAnswer(t *testing.T) {
	url, _, _ := flaky(t, 100, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, ok)
	_, err := do(t, fast(), http.MethodHead, url+"/v2/r/manifests/1.0.0", nil, 0)
	if !errors.Is(err, errdef.ErrUnavailable) || !strings.Contains(err.Error(), "answered 503 Service Unavailable after 3 attempts:") {
		t.Fatalf("HEAD against a failing registry: %v", err)
	}
}

// A referrers page is read up to 4 MiB, by every client over the
// transport (oras-go cuts it there itself, go-containerregistry does not).
func TestRetryCutsAnEndlessReferrersPage(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/vnd.oci.image.index.v1+json")
		io.WriteString(w, `{"schemaVersion":2,"manifests":[`)
		buf := []byte(strings.Repeat(" ", 64<<10))
		for range 128 {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	page := "/v2/r/referrers/" + digest.FromString("subject").String()
	resp, err := do(t, fast(), http.MethodGet, srv.URL+page, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), "over 4 MiB") || !strings.Contains(err.Error(), page) || len(b) > 4<<20 {
		t.Fatalf("endless referrers page: %d bytes, %v", len(b), err)
	}
}

// slow yields its chunks one by one, a pause before each.
type slow struct {
	chunks []string
	pause  time.Duration
}

func (s *slow) Read(p []byte) (int, error) {
	if len(s.chunks) == 0 {
		return 0, io.EOF
	}
	time.Sleep(s.pause)
	n := copy(p, s.chunks[0])
	s.chunks = s.chunks[1:]
	return n, nil
}

// The bound is on silence, not on the attempt: an upload that keeps
// sending for longer than the bound is not cut off.
func TestRetryBoundsSilenceNotUploads(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	body := &slow{chunks: []string{"a", "b", "c", "d", "e", "f"}, pause: 80 * time.Millisecond}
	resp, err := do(t, bounded(), http.MethodPatch, srv.URL+"/v2/r/blobs/uploads/x", body, -1)
	if err != nil {
		t.Fatalf("a slow upload: %v", err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "abcdef" {
		t.Fatalf("a slow upload: the registry got %q", b)
	}
}
