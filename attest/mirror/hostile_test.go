package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/memory"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/attest/mirror"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// hostile starts a loopback registry that answers the version check and
// hands every other request to h, and returns a client for its repository
// wf/b.
func hostile(t testing.TB, h http.HandlerFunc) *remote.Repository {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
			return
		}
		h(w, r)
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

// referrersPage writes n referrers, numbered from first, and a link to
// the next page when next.
func referrersPage(w http.ResponseWriter, r *http.Request, first, n int, next bool) {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: make([]ocispec.Descriptor, n)}
	idx.SchemaVersion = 2
	for i := range idx.Manifests {
		idx.Manifests[i] = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/example", Digest: digest.FromString(strconv.Itoa(first + i)), Size: 100}
	}
	if next {
		w.Header().Set("Link", fmt.Sprintf(`<%s?last=%d>; rel="next"`, r.URL.Path, first+n))
	}
	w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
	json.NewEncoder(w).Encode(idx)
}

// TestReferrersOfAHostileRegistry: a registry whose referrers listing
// never ends, or holds more entries than are copied, is cut off with an
// error naming the limit, and no more of it is read than the limit needs;
// one whose page never ends is cut off at 4 MiB with an error naming the
// limit and the page, and one nested without end fails to decode.
func TestReferrersOfAHostileRegistry(t *testing.T) {
	ctx := context.Background()
	subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromString("subject"), Size: 2}
	cases := []struct {
		name  string
		serve func(w http.ResponseWriter, r *http.Request, page int)
		want  string
		pages int64 // pages read at most
	}{
		{"endless pagination", func(w http.ResponseWriter, r *http.Request, page int) {
			referrersPage(w, r, page, 1, true)
		}, fmt.Sprintf("%d pages", target.MaxListPages), target.MaxListPages},
		{"too many entries", func(w http.ResponseWriter, r *http.Request, page int) {
			referrersPage(w, r, page*900, 900, true)
		}, fmt.Sprintf("more than %d entries", mirror.MaxReferrers), 2},
		{"endless page", func(w http.ResponseWriter, r *http.Request, page int) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Write([]byte(`{"schemaVersion":2,"manifests":[`))
			buf := []byte(strings.Repeat(" ", 64<<10))
			for range (1 << 30) / len(buf) {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}, "over 4 MiB", 1},
		{"deeply nested", func(w http.ResponseWriter, r *http.Request, page int) {
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			fmt.Fprintf(w, `{"schemaVersion":2,"manifests":%s%s}`, strings.Repeat("[", 100000), strings.Repeat("]", 100000))
		}, "", 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var pages atomic.Int64
			repo := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				if !strings.HasPrefix(r.URL.Path, "/v2/wf/b/referrers/") {
					http.NotFound(w, r)
					return
				}
				c.serve(w, r, int(pages.Add(1)-1))
			})
			rs, err := mirror.Referrers(ctx, repo, subject)
			if err == nil {
				t.Fatalf("listed %d referrers, want an error", len(rs))
			}
			if c.want != "" && (!errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want ErrTooLarge naming %q", err, c.want)
			}
			if c.name == "endless page" && !strings.Contains(err.Error(), "/v2/wf/b/referrers/"+subject.Digest.String()) {
				t.Fatalf("err = %v, want the page's URL", err)
			}
			if n := pages.Load(); n > c.pages {
				t.Fatalf("read %d pages, want at most %d", n, c.pages)
			}
		})
	}
}

// TestCopyAllFromEndlessTags: a source whose tag listing never ends, or
// lists more versions than are copied, is cut off with an error naming the
// limit, reading no more pages than the limit needs.
func TestCopyAllFromEndlessTags(t *testing.T) {
	for _, c := range []struct {
		perPage int
		want    string
		pages   int64
	}{
		{20, fmt.Sprintf("%d pages", target.MaxListPages), target.MaxListPages},
		{4000, fmt.Sprintf("more than %d version tags", mirror.MaxVersions), 3},
	} {
		t.Run(strconv.Itoa(c.perPage), func(t *testing.T) {
			var pages atomic.Int64
			repo := hostile(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v2/wf/b/tags/list" {
					http.NotFound(w, r)
					return
				}
				n := int(pages.Add(1))
				tags := make([]string, c.perPage)
				for i := range tags {
					tags[i] = fmt.Sprintf("1.%d.%d", n, i)
				}
				w.Header().Set("Link", fmt.Sprintf(`</v2/wf/b/tags/list?last=1.%d.%d>; rel="next"`, n, c.perPage-1))
				json.NewEncoder(w).Encode(map[string]any{"name": "wf/b", "tags": tags})
			})
			dst := memory.New()
			sum, err := mirror.CopyAll(context.Background(), repo, dst, mirror.AllOptions{})
			if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v (summary %+v), want ErrTooLarge naming %q", err, sum, c.want)
			}
			if n := pages.Load(); n > c.pages {
				t.Fatalf("read %d pages, want at most %d", n, c.pages)
			}
		})
	}
}

// TestCopyRefusesAnOversizedBlob: a source manifest naming a blob over
// the copy's limit is refused with an error naming the blob and the limit,
// before the blob is asked for.
func TestCopyRefusesAnOversizedBlob(t *testing.T) {
	const size = mirror.MaxBlobBytes + 1
	big := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString("big"), Size: size}
	cfg := []byte("{}")
	m := ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{big}}
	raw, _ := json.Marshal(m)
	var blobReads atomic.Int64
	repo := hostile(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v2/wf/b/manifests/" + digest.FromBytes(raw).String():
			w.Header().Set("Content-Type", ocispec.MediaTypeImageManifest)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(raw).String())
			w.Header().Set("Content-Length", strconv.Itoa(len(raw)))
			w.Write(raw)
		case "/v2/wf/b/blobs/" + m.Config.Digest.String():
			w.Write(cfg)
		case "/v2/wf/b/blobs/" + big.Digest.String():
			blobReads.Add(1)
			w.Header().Set("Content-Length", strconv.Itoa(size))
			w.Write(make([]byte, size))
		default:
			http.NotFound(w, r)
		}
	})
	dst, err := oci.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	_, err = mirror.Copy(context.Background(), repo, digest.FromBytes(raw).String(), dst, mirror.Options{})
	if !errors.Is(err, errdef.ErrTooLarge) || !strings.Contains(err.Error(), big.Digest.String()) || !strings.Contains(err.Error(), strconv.Itoa(mirror.MaxBlobBytes)) {
		t.Fatalf("err = %v, want ErrTooLarge naming the blob and the limit", err)
	}
	if n := blobReads.Load(); n != 0 {
		t.Fatalf("the oversized blob was asked for %d times", n)
	}
}
