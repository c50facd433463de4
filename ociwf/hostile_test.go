package ociwf_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// hostileRegistry is a loopback registry serving the repository wf/b:
// its manifest by the tag 1.0.0 and by digest, and blobs, each as serve
// says (nil serves the bytes given).
type hostileRegistry struct {
	manifest []byte
	blobs    map[digest.Digest][]byte
	// size is the manifest size announced, when not 0.
	size int64
	// endless streams this body, without a Content-Length, for the
	// manifest (manifest) or for one blob (its digest).
	endless string
	gets    atomic.Int64 // GETs of the manifest or of the endless blob
}

// endlessBody writes zeros until the client hangs up, at most 1 GiB.
func endlessBody(w http.ResponseWriter) {
	buf := make([]byte, 64<<10)
	for range (1 << 30) / len(buf) {
		if _, err := w.Write(buf); err != nil {
			return
		}
	}
}

func (h *hostileRegistry) start(t *testing.T) *remote.Repository {
	t.Helper()
	dgst := digest.FromBytes(h.manifest)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimPrefix(r.URL.Path, "/v2/wf/b/")
		switch {
		case r.URL.Path == "/v2/":
		case p == "manifests/1.0.0" || p == "manifests/"+dgst.String():
			size := int64(len(h.manifest))
			if h.size != 0 {
				size = h.size
			}
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", dgst.String())
			if r.Method == http.MethodHead {
				w.Header().Set("Content-Length", fmt.Sprint(size))
				return
			}
			h.gets.Add(1)
			if h.endless == "manifest" {
				endlessBody(w)
				return
			}
			w.Write(h.manifest)
		case strings.HasPrefix(p, "blobs/"):
			d := digest.Digest(strings.TrimPrefix(p, "blobs/"))
			if string(d) == h.endless {
				h.gets.Add(1)
				endlessBody(w)
				return
			}
			b, ok := h.blobs[d]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	repo, err := o.Repository(registry.Reference{Registry: strings.TrimPrefix(srv.URL, "http://"), Repository: "wf/b"})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// TestPullFromAHostileRegistry: a registry announcing a manifest over its
// limit, streaming a manifest or a layer without end, or serving a
// manifest nested without end, makes pull fail with an error that names
// the content, having read at most one byte past what its descriptor
// allows, and writing nothing.
func TestPullFromAHostileRegistry(t *testing.T) {
	ctx := context.Background()
	b := compileSample(t, "build-test-release.yaml")
	mem, desc := packed(t, b)
	manifest, err := content.FetchAll(ctx, mem, desc)
	if err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	for _, p := range [][]byte{b.Config, b.Source, b.PlanJSON, b.SBOM} {
		blobs[digest.FromBytes(p)] = p
	}
	nested := []byte(`{"schemaVersion":2,"layers":` + strings.Repeat("[", 1<<20) + strings.Repeat("]", 1<<20) + `}`)
	cases := []struct {
		name string
		reg  *hostileRegistry
		is   error
		want string
		gets int64
	}{
		{"manifest announced over its limit", &hostileRegistry{manifest: manifest, blobs: blobs, size: ociwf.MaxManifestBytes + 1}, errdef.ErrTooLarge, "too large", 0},
		{"endless manifest", &hostileRegistry{manifest: manifest, blobs: blobs, endless: "manifest"}, errdef.ErrVerification, "re-hashes to another digest", 1},
		{"endless source layer", &hostileRegistry{manifest: manifest, blobs: blobs, endless: digest.FromBytes(b.Source).String()}, errdef.ErrVerification, "source layer", 2},
		{"manifest nested without end", &hostileRegistry{manifest: nested}, errdef.ErrNotWorkflow, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := c.reg.start(t)
			dir := t.TempDir()
			_, err := ociwf.Pull(ctx, repo, "1.0.0", dir, ociwf.WriteOptions{})
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %v mentioning %q", err, c.is, c.want)
			}
			t.Log(err)
			if n := c.reg.gets.Load(); n != c.gets {
				t.Fatalf("%d GETs of the hostile content, want %d", n, c.gets)
			}
			if ls, _ := os.ReadDir(dir); len(ls) != 0 {
				t.Fatalf("pull left %v", ls)
			}
		})
	}
}
