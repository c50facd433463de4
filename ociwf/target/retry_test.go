package target_test

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// fast is the default policy with waits short enough for tests.
func fast() target.RetryPolicy {
	p := target.DefaultRetryPolicy()
	p.Backoff, p.MaxWait, p.MaxRetries = time.Millisecond, time.Millisecond, 2
	return p
}

// flaky answers fail to the first n requests, then serve.
func flaky(t *testing.T, n int64, fail, serve http.HandlerFunc) (string, *atomic.Int64, *[]string) {
	t.Helper()
	var seen atomic.Int64
	var bodies []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		bodies = append(bodies, string(b))
		if seen.Add(1) <= n {
			fail(w, r)
			return
		}
		serve(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, &seen, &bodies
}

func ok(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "done") }

func do(t *testing.T, p target.RetryPolicy, method, url string, body io.Reader, size int64) (*http.Response, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = size
	return (&http.Client{Transport: target.RetryTransport(nil, p)}).Do(req)
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	for _, after := range []string{"0", time.Now().Add(-time.Hour).UTC().Format(http.TimeFormat)} {
		url, seen, _ := flaky(t, 1, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Retry-After", after)
			w.WriteHeader(http.StatusTooManyRequests)
		}, ok)
		resp, err := do(t, fast(), http.MethodGet, url+"/v2/r/tags/list", nil, 0)
		if err != nil || resp.StatusCode != 200 || seen.Load() != 2 {
			t.Fatalf("Retry-After %q: %v %v after %d requests", after, resp, err, seen.Load())
		}
	}
}

func TestRetryResendsAPutBody(t *testing.T) {
	url, seen, bodies := flaky(t, 1, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) }, ok)
	// A reader without GetBody, as clients stream manifests and blobs.
	body := io.MultiReader(strings.NewReader("man"), strings.NewReader("ifest"))
	resp, err := do(t, fast(), http.MethodPut, url+"/v2/r/manifests/1.0.0", body, 8)
	if err != nil || resp.StatusCode != 200 || seen.Load() != 2 || strings.Join(*bodies, ",") != "manifest,manifest" {
		t.Fatalf("PUT: %v %v, bodies %q", resp, err, *bodies)
	}
}

func TestRetryGivesUpClearly(t *testing.T) {
	url, seen, _ := flaky(t, 100, func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "down for maintenance", http.StatusBadGateway)
	}, ok)
	host := strings.TrimPrefix(url, "http://")
	_, err := do(t, fast(), http.MethodGet, url+"/v2/r/manifests/1.0.0", nil, 0)
	if !errors.Is(err, errdef.ErrUnavailable) || seen.Load() != 3 || !strings.Contains(err.Error(), "registry "+host+" answered 502 Bad Gateway after 3 attempts (down for maintenance)") {
		t.Fatalf("GET against a failing registry: %v after %d requests", err, seen.Load())
	}
	// A PATCH feeds an upload session: sent once.
	seen.Store(0)
	_, err = do(t, fast(), http.MethodPatch, url+"/v2/r/blobs/uploads/x", strings.NewReader("chunk"), 5)
	if !errors.Is(err, errdef.ErrUnavailable) || seen.Load() != 1 {
		t.Fatalf("PATCH: %v after %d requests", err, seen.Load())
	}
	// No retries at all.
	seen.Store(0)
	if _, err := do(t, target.NoRetries(), http.MethodGet, url+"/v2/", nil, 0); !errors.Is(err, errdef.ErrUnavailable) || seen.Load() != 1 {
		t.Fatalf("NoRetries: %v after %d requests", err, seen.Load())
	}
}

func TestRetryRefusesOtherBytes(t *testing.T) {
	want := digest.FromString("the blob")
	url, _, _ := flaky(t, 0, nil, func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "another blob") })
	resp, err := do(t, fast(), http.MethodGet, url+"/v2/r/blobs/"+want.String(), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.ReadAll(resp.Body)
	if !errors.Is(err, errdef.ErrVerification) || !strings.Contains(err.Error(), "served other bytes than") || !strings.Contains(err.Error(), "rerun") {
		t.Fatalf("read other bytes: %v", err)
	}
}

func TestRetryFillsAMissingDigest(t *testing.T) {
	manifest := `{"schemaVersion":2}`
	url, _, _ := flaky(t, 0, nil, func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			io.WriteString(w, manifest)
		}
	})
	resp, err := do(t, fast(), http.MethodHead, url+"/v2/r/manifests/1.0.0", nil, 0)
	if err != nil || resp.Header.Get("Docker-Content-Digest") != digest.FromString(manifest).String() {
		t.Fatalf("HEAD without Docker-Content-Digest: %v %v", resp, err)
	}
}
