package mirror_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"

	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/mirror"
	"ociwf.dev/ociwf"
)

// served is what the fuzzed registry serves: one manifest (or index) by
// its digest, one referrers listing of it, repeated for pages pages, and
// the blobs of the seed workflow.
type served struct {
	manifest, referrers []byte
	pages               int
}

// FuzzServed serves arbitrary bytes from a loopback registry as a
// manifest (or index) and as the referrers list of it, with the blobs of a
// real workflow, and reads them as ociwf does: the workflow reader
// (ReadBuild), the referrers walk of a copy and a whole copy into memory.
// No panic; every refusal is an error; an accepted manifest names only
// parts within their limits under safe titles, an accepted listing is
// bounded and lists each referrer once.
func FuzzServed(f *testing.F) {
	ctx := context.Background()
	b := attesttest.Sample(f, "build-test-release.yaml")
	blobs := map[digest.Digest][]byte{}
	for _, p := range [][]byte{b.Config, b.Source, b.PlanJSON, b.SBOM} {
		blobs[digest.FromBytes(p)] = p
	}
	mem := memory.New()
	desc, err := ociwf.Pack(ctx, mem, b, ociwf.PackOptions{})
	if err != nil {
		f.Fatal(err)
	}
	manifest, err := content.FetchAll(ctx, mem, desc)
	if err != nil {
		f.Fatal(err)
	}
	referrer := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: "application/vnd.dev.sigstore.bundle.v0.3+json", Digest: digest.FromString("r"), Size: 512}
	idx, _ := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{referrer}})
	f.Add(manifest, idx, uint8(0))
	f.Add(idx, []byte(`{"schemaVersion":2,"manifests":[]}`), uint8(3))
	f.Add([]byte(`{"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:00","size":-1}]}`), []byte(`[]`), uint8(1))

	var cur atomic.Pointer[served]
	repo := hostile(f, func(w http.ResponseWriter, r *http.Request) {
		s := cur.Load()
		path := strings.TrimPrefix(r.URL.Path, "/v2/wf/b/")
		switch {
		case strings.HasPrefix(path, "manifests/") && strings.TrimPrefix(path, "manifests/") == digest.FromBytes(s.manifest).String():
			var mt struct {
				MediaType string `json:"mediaType"`
			}
			json.Unmarshal(s.manifest, &mt)
			if mt.MediaType == "" {
				mt.MediaType = ocispec.MediaTypeImageManifest
			}
			w.Header().Set("Content-Type", mt.MediaType)
			w.Header().Set("Docker-Content-Digest", digest.FromBytes(s.manifest).String())
			w.Header().Set("Content-Length", fmt.Sprint(len(s.manifest)))
			if r.Method != http.MethodHead {
				w.Write(s.manifest)
			}
		case strings.HasPrefix(path, "blobs/"):
			p, ok := blobs[digest.Digest(strings.TrimPrefix(path, "blobs/"))]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Content-Length", fmt.Sprint(len(p)))
			w.Write(p)
		case strings.HasPrefix(path, "referrers/"):
			page := 0
			fmt.Sscan(r.URL.Query().Get("page"), &page)
			if page+1 < s.pages {
				w.Header().Set("Link", fmt.Sprintf(`<%s?page=%d>; rel="next"`, r.URL.Path, page+1))
			}
			w.Header().Set("Content-Type", ocispec.MediaTypeImageIndex)
			w.Write(s.referrers)
		default:
			http.NotFound(w, r)
		}
	})
	cur.Store(&served{manifest: manifest, referrers: idx})
	if _, _, err := ociwf.ReadBuild(ctx, repo, desc); err != nil {
		f.Fatalf("the seed workflow does not read back: %v", err)
	}
	if rs, err := mirror.Referrers(ctx, repo, desc); err != nil || len(rs) != 1 {
		f.Fatalf("the seed referrers: %v, %v", rs, err)
	}
	f.Fuzz(func(t *testing.T, manifest, referrers []byte, pages uint8) {
		cur.Store(&served{manifest: manifest, referrers: referrers, pages: int(pages % 8)})
		d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(manifest), Size: int64(len(manifest))}
		if m, _, err := ociwf.ReadBuild(ctx, repo, d); err == nil {
			for _, p := range m.Parts() {
				if p.Descriptor.Size < 0 || p.Descriptor.Size > p.Limit || p.Descriptor.Digest.Validate() != nil {
					t.Fatalf("accepted %s %+v", p.Name, p.Descriptor)
				}
			}
			for _, l := range []ocispec.Descriptor{m.Source, m.Plan, m.SBOM} {
				if err := ociwf.CheckTitle(l.Annotations[ocispec.AnnotationTitle]); err != nil {
					t.Fatalf("accepted a layer title: %v", err)
				}
			}
		} else if errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
		rs, err := mirror.Referrers(ctx, repo, d)
		if err == nil {
			seen := map[digest.Digest]bool{d.Digest: true}
			for _, r := range rs {
				if seen[r.Digest] {
					t.Fatalf("listed %s twice, or the subject", r.Digest)
				}
				seen[r.Digest] = true
			}
			if len(rs) > mirror.MaxReferrers {
				t.Fatalf("listed %d referrers", len(rs))
			}
		}
		mirror.Copy(ctx, repo, d.Digest.String(), memory.New(), mirror.Options{})
	})
}
