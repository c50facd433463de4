package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"

	"ociwf.dev/ociwf"
	"ociwf.dev/policy/registrytest"
)

// maxImageBlob bounds each blob of the image read back (the binary's layer
// is some tens of MiB).
const maxImageBlob = 512 << 20

// layoutImage is one image of an OCI layout, read back and checked.
type layoutImage struct {
	Platform string // os/arch
	Config   ocispec.Image
	Layers   [][]byte // compressed, as stored
}

// readLayout reads the OCI image layout in dir from index.json down, every
// manifest, config and layer through ociwf.FetchAll (each blob's size and
// sha256 checked against its descriptor, as `ociwf verify` checks a
// workflow's), and checks each layer's uncompressed digest against the
// config's rootfs.diff_ids. It returns the images, one per platform.
func readLayout(ctx context.Context, dir string) ([]layoutImage, error) {
	marker, err := os.ReadFile(filepath.Join(dir, ocispec.ImageLayoutFile))
	if err != nil {
		return nil, err
	}
	var lay ocispec.ImageLayout
	if err := json.Unmarshal(marker, &lay); err != nil || lay.Version != ocispec.ImageLayoutVersion {
		return nil, fmt.Errorf("oci-layout %q: want imageLayoutVersion %s (%v)", marker, ocispec.ImageLayoutVersion, err)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(raw, &idx); err != nil {
		return nil, fmt.Errorf("index.json: %w", err)
	}
	if len(idx.Manifests) != 1 {
		return nil, fmt.Errorf("index.json lists %d manifests, want the one image (or index) built", len(idx.Manifests))
	}
	store, err := oci.NewFromFS(ctx, os.DirFS(dir))
	if err != nil {
		return nil, err
	}
	var images []layoutImage
	var walk func(desc ocispec.Descriptor, depth int) error
	walk = func(desc ocispec.Descriptor, depth int) error {
		b, err := ociwf.FetchAll(ctx, store, desc, ociwf.MaxManifestBytes)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", desc.Digest, err)
		}
		switch desc.MediaType {
		case ocispec.MediaTypeImageIndex:
			var sub ocispec.Index
			if err := json.Unmarshal(b, &sub); err != nil {
				return fmt.Errorf("index %s: %w", desc.Digest, err)
			}
			if depth > 0 || len(sub.Manifests) == 0 {
				return fmt.Errorf("index %s: %d manifests at depth %d, want one image per platform", desc.Digest, len(sub.Manifests), depth)
			}
			for _, m := range sub.Manifests {
				if err := walk(m, depth+1); err != nil {
					return err
				}
			}
			return nil
		case ocispec.MediaTypeImageManifest:
		default:
			return fmt.Errorf("%s: media type %s, want an OCI image manifest or index", desc.Digest, desc.MediaType)
		}
		var m ocispec.Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return fmt.Errorf("image manifest %s: %w", desc.Digest, err)
		}
		if m.Config.MediaType != ocispec.MediaTypeImageConfig {
			return fmt.Errorf("image %s: config media type %s, want %s", desc.Digest, m.Config.MediaType, ocispec.MediaTypeImageConfig)
		}
		cb, err := ociwf.FetchAll(ctx, store, m.Config, ociwf.MaxConfigBytes)
		if err != nil {
			return fmt.Errorf("image %s: config: %w", desc.Digest, err)
		}
		var img layoutImage
		if err := json.Unmarshal(cb, &img.Config); err != nil {
			return fmt.Errorf("image %s: config: %w", desc.Digest, err)
		}
		img.Platform = img.Config.OS + "/" + img.Config.Architecture
		if p := desc.Platform; p != nil && p.OS+"/"+p.Architecture != img.Platform {
			return fmt.Errorf("image %s: the index says %s/%s, its config %s", desc.Digest, p.OS, p.Architecture, img.Platform)
		}
		if len(m.Layers) != len(img.Config.RootFS.DiffIDs) {
			return fmt.Errorf("image %s: %d layers, %d diff_ids", desc.Digest, len(m.Layers), len(img.Config.RootFS.DiffIDs))
		}
		for i, l := range m.Layers {
			lb, err := ociwf.FetchAll(ctx, store, l, maxImageBlob)
			if err != nil {
				return fmt.Errorf("image %s: layer %d: %w", desc.Digest, i, err)
			}
			if l.MediaType != ocispec.MediaTypeImageLayerGzip {
				return fmt.Errorf("image %s: layer %d: media type %s, want %s", desc.Digest, i, l.MediaType, ocispec.MediaTypeImageLayerGzip)
			}
			zr, err := gzip.NewReader(bytes.NewReader(lb))
			if err != nil {
				return fmt.Errorf("image %s: layer %d: %w", desc.Digest, i, err)
			}
			diff, err := digest.SHA256.FromReader(zr)
			if err != nil {
				return fmt.Errorf("image %s: layer %d: %w", desc.Digest, i, err)
			}
			if diff != img.Config.RootFS.DiffIDs[i] {
				return fmt.Errorf("image %s: layer %d uncompresses to %s, the config's diff_id is %s", desc.Digest, i, diff, img.Config.RootFS.DiffIDs[i])
			}
			img.Layers = append(img.Layers, lb)
		}
		images = append(images, img)
		return nil
	}
	if err := walk(idx.Manifests[0], 0); err != nil {
		return nil, err
	}
	return images, nil
}

// fileInLayers returns the content of the file at p (no leading slash) in
// the topmost layer holding it.
func fileInLayers(layers [][]byte, p string) ([]byte, error) {
	var found []byte
	for _, l := range layers {
		zr, err := gzip.NewReader(bytes.NewReader(l))
		if err != nil {
			return nil, err
		}
		tr := tar.NewReader(zr)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, err
			}
			if strings.TrimPrefix(path.Clean("/"+h.Name), "/") == p && h.Typeflag == tar.TypeReg {
				if found, err = io.ReadAll(tr); err != nil {
					return nil, err
				}
			}
		}
	}
	if found == nil {
		return nil, fmt.Errorf("no file %s in the image's layers", p)
	}
	return found, nil
}

// writeTestLayout writes an OCI layout of a random OCI image with one layer
// and the entrypoint ko gives ociwf-registry, and returns its directory.
func writeTestLayout(t *testing.T) string {
	t.Helper()
	l, err := random.Layer(2048, types.OCILayer)
	if err != nil {
		t.Fatal(err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	if img, err = mutate.AppendLayers(img, l); err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = "linux", "amd64"
	cf.Config.Entrypoint = []string{"/ko-app/ociwf-registry"}
	if img, err = mutate.ConfigFile(img, cf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.AppendImage(img); err != nil {
		t.Fatal(err)
	}
	return dir
}

// The layout check accepts a sound layout and refuses each kind of damage.
func TestReadLayout(t *testing.T) {
	ctx := context.Background()
	images, err := readLayout(ctx, writeTestLayout(t))
	if err != nil || len(images) != 1 || images[0].Platform != "linux/amd64" || len(images[0].Layers) != 1 {
		t.Fatalf("readLayout of a sound layout: %v, %d images", err, len(images))
	}
	// blob returns the path of the blob of the largest file of dir's
	// blobs: the layer.
	layer := func(dir string) string {
		t.Helper()
		var best string
		var size int64
		entries, _ := os.ReadDir(filepath.Join(dir, "blobs", "sha256"))
		for _, e := range entries {
			if fi, err := e.Info(); err == nil && fi.Size() > size {
				best, size = filepath.Join(dir, "blobs", "sha256", e.Name()), fi.Size()
			}
		}
		return best
	}
	cases := []struct {
		name   string
		damage func(t *testing.T, dir string)
		want   string
	}{
		{"layer truncated", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(layer(dir))
			if err := os.WriteFile(layer(dir), b[:len(b)-1], 0o644); err != nil {
				t.Fatal(err)
			}
		}, "layer 0"},
		{"layer altered", func(t *testing.T, dir string) {
			b, _ := os.ReadFile(layer(dir))
			b[len(b)/2] ^= 0xff
			if err := os.WriteFile(layer(dir), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "layer 0"},
		{"layer missing", func(t *testing.T, dir string) {
			if err := os.Remove(layer(dir)); err != nil {
				t.Fatal(err)
			}
		}, "layer 0"},
		{"index names no manifest", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "index.json"), []byte(`{"schemaVersion":2,"manifests":[]}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "lists 0 manifests"},
		{"not a layout", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, ocispec.ImageLayoutFile)); err != nil {
				t.Fatal(err)
			}
		}, ocispec.ImageLayoutFile},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeTestLayout(t)
			c.damage(t, dir)
			if _, err := readLayout(ctx, dir); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("readLayout: %v, want an error naming %q", err, c.want)
			}
		})
	}
}

// TestImage builds the ociwf-registry image with scripts/image.sh (ko, the
// pinned version from scripts/tools.sh, on an empty base image served by a
// loopback registry: the tests have no network), reads the layout back
// with every digest checked, and runs the binary it holds.
func TestImage(t *testing.T) {
	if raceDetector {
		t.Skip("the image build starts no goroutine of ours; run without -race")
	}
	ko, err := filepath.Abs("../../.tools/bin/ko")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(ko); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
			t.Fatalf("ko missing (scripts/tools.sh builds it): %v", err)
		}
		t.Skipf("ko not built (%s; run scripts/tools.sh)", ko)
	}
	// The base: an empty OCI image for this platform.
	base := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	base = mutate.ConfigMediaType(base, types.OCIConfigJSON)
	base, err = mutate.ConfigFile(base, &v1.ConfigFile{OS: "linux", Architecture: runtime.GOARCH, RootFS: v1.RootFS{Type: "layers"}})
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(registrytest.New(t)+"/base/empty:latest", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, base); err != nil {
		t.Fatalf("push the base image: %v", err)
	}
	baseDigest, err := base.Digest()
	if err != nil {
		t.Fatal(err)
	}

	out := filepath.Join(t.TempDir(), "image")
	cmd := exec.Command("bash", "../../scripts/image.sh", out)
	cmd.Env = append(os.Environ(), "BASE_IMAGE="+ref.Context().Digest(baseDigest.String()).String(), "PLATFORMS=linux/"+runtime.GOARCH)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("scripts/image.sh: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	images, err := readLayout(context.Background(), out)
	if err != nil {
		t.Fatalf("the image layout scripts/image.sh wrote: %v", err)
	}
	if len(images) != 1 || images[0].Platform != "linux/"+runtime.GOARCH {
		t.Fatalf("the layout holds %d images, want one for linux/%s", len(images), runtime.GOARCH)
	}
	img := images[0]
	if got := img.Config.Config.Entrypoint; len(got) != 1 || path.Base(got[0]) != "ociwf-registry" {
		t.Fatalf("entrypoint %q, want ociwf-registry", got)
	}
	if u := img.Config.Config.User; u != "65532:65532" {
		t.Errorf("image user %q, want 65532:65532 (not root)", u)
	}
	printed := strings.TrimSpace(stdout.String())
	raw, _ := os.ReadFile(filepath.Join(out, "index.json"))
	var idx ocispec.Index
	if json.Unmarshal(raw, &idx) != nil || len(idx.Manifests) != 1 || printed != idx.Manifests[0].Digest.String() {
		t.Errorf("scripts/image.sh printed %q; index.json names %s", printed, raw)
	}

	// The entrypoint is the ociwf-registry binary, and it runs.
	bin, err := fileInLayers(img.Layers, strings.TrimPrefix(img.Config.Config.Entrypoint[0], "/"))
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(t.TempDir(), "ociwf-registry")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := exec.Command(exe, "serve", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(got), "Serve runs the embedded CNCF Distribution registry") {
		t.Fatalf("the image's entrypoint, run: %v\n%s", err, got)
	}
}
