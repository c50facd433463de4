package accessory_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/ociwf/errdef"
)

// TestFindAgainstAHostileRegistry: a registry that streams a referrers
// list or a cosign signature manifest without end, or
// lists more referrers than are read, makes Find fail with ErrTooLarge
// naming the limit, after reading at most the limit (go-containerregistry,
// which cosign reads with, reads these bodies whole).
func TestFindAgainstAHostileRegistry(t *testing.T) {
	ctx := context.Background()
	subj := digest.FromString("subject")
	endless := func(w http.ResponseWriter) int64 {
		buf := []byte(strings.Repeat(" ", 64<<10))
		var n int64
		for n < 1<<30 {
			m, err := w.Write(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		return n
	}
	for _, c := range []struct {
		name   string
		format accessory.Format
		path   string // the endpoint made hostile
		serve  func(w http.ResponseWriter) int64
		want   string
	}{
		{"endless referrers list", accessory.FormatBundle, "/referrers/", func(w http.ResponseWriter) int64 {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Write([]byte(`{"schemaVersion":2,"manifests":[`))
			return endless(w)
		}, "over 4 MiB"},
		{"more referrers than are read", accessory.FormatBundle, "/referrers/", func(w http.ResponseWriter) int64 {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			var b strings.Builder
			b.WriteString(`{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[`)
			for i := range accessory.MaxReferrers + 1 {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, `{"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"application/vnd.dev.sigstore.bundle.v0.3+json","digest":"%s","size":100}`, digest.FromString(fmt.Sprint(i)))
			}
			b.WriteString("]}")
			n, _ := w.Write([]byte(b.String()))
			return int64(n)
		}, fmt.Sprint(accessory.MaxReferrers)},
		{"endless signature manifest", accessory.FormatLegacy, "/manifests/sha256-", func(w http.ResponseWriter) int64 {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			// As a registry does: without it the client computes the
			// digest itself, reading at most a manifest's 4 MiB.
			w.Header().Set("Docker-Content-Digest", digest.FromString("endless").String())
			return endless(w)
		}, fmt.Sprint(accessory.MaxAccessoryBytes)},
		{"endless signature manifest without its digest", accessory.FormatLegacy, "/manifests/sha256-", func(w http.ResponseWriter) int64 {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			return endless(w)
		}, fmt.Sprint(4 << 20)},
	} {
		t.Run(c.name, func(t *testing.T) {
			var served atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch {
				case r.URL.Path == "/v2/":
				case strings.Contains(r.URL.Path, c.path):
					if n := c.serve(w); n > served.Load() {
						served.Store(n) // the most any one response wrote
					}
				default:
					http.NotFound(w, r)
				}
			}))
			t.Cleanup(srv.Close)
			reg := accessory.NewRegistry(attesttest.Opener(t), accessory.RegistryOptions{Format: c.format})
			_, err := reg.Find(ctx, accessory.Subject{Repository: strings.TrimPrefix(srv.URL, "http://") + "/wf/b", Digest: subj})
			if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want ErrTooLarge naming %s", err, c.want)
			}
			// The client stops reading each response at the limit; what the
			// server got out before noticing is bounded by the connection's
			// buffers.
			if n := served.Load(); n > accessory.MaxAccessoryBytes+8<<20 {
				t.Fatalf("the server wrote %d bytes in one response before the client hung up", n)
			}
		})
	}
}

// TestFindAgainstAnEndlessErrorBody: an error response whose body never
// ends is read for MaxErrorBodyBytes at most, and reported by its status.
func TestFindAgainstAnEndlessErrorBody(t *testing.T) {
	var most atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		w.Write([]byte(`{"errors":[{"code":"UNKNOWN","message":"`))
		buf := []byte(strings.Repeat("x", 64<<10))
		var n int64
		for n < 1<<30 {
			m, err := w.Write(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		if n > most.Load() {
			most.Store(n)
		}
	}))
	t.Cleanup(srv.Close)
	reg := accessory.NewRegistry(attesttest.Opener(t), accessory.RegistryOptions{Format: accessory.FormatLegacy})
	_, err := reg.Find(context.Background(), accessory.Subject{Repository: strings.TrimPrefix(srv.URL, "http://") + "/wf/b", Digest: digest.FromString("subject")})
	if err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want the status 500", err)
	}
	if n := most.Load(); n > 8<<20 {
		t.Fatalf("the server wrote %d bytes of one error body before the client hung up", n)
	}
}
