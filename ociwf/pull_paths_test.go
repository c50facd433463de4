package ociwf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
)

// TestPullStaysInsideItsDirectory: layer titles that would name a path
// outside the output directory (.., absolute, nested, a drive or stream
// name) are refused before anything is written, and a symbolic link
// planted in the directory under a layer's title is neither followed nor
// replaced, even with --force.
func TestPullStaysInsideItsDirectory(t *testing.T) {
	ctx := context.Background()
	b := compileSample(t, "build-test-release.yaml")
	mem, desc := packed(t, b)
	raw, err := content.FetchAll(ctx, mem, desc)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	outside := filepath.Join(root, "outside")
	for _, title := range []string{"../escape.yaml", "..", "/abs.yaml", outside, "sub/dir.yaml", `..\win.yaml`, "c:evil", "-rf", "."} {
		t.Run(title, func(t *testing.T) {
			var m ocispec.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			m.Layers[0].Annotations = map[string]string{ocispec.AnnotationTitle: title}
			edited, _ := json.Marshal(m)
			d := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(edited), Size: int64(len(edited))}
			if err := mem.Push(ctx, d, bytes.NewReader(edited)); err != nil && !errors.Is(err, orasdef.ErrAlreadyExists) {
				t.Fatal(err)
			}
			if err := mem.Tag(ctx, d, "hostile"); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "out", "nested")
			_, err := ociwf.Pull(ctx, mem, "hostile", dir, ociwf.WriteOptions{Force: true})
			if !errors.Is(err, errdef.ErrNotWorkflow) {
				t.Fatalf("pull of a layer titled %q: err = %v, want ErrNotWorkflow", title, err)
			}
			if ls, _ := os.ReadDir(root); len(ls) != 0 {
				t.Fatalf("the refused pull wrote %v", ls)
			}
		})
	}
	t.Run("symlink planted under a title", func(t *testing.T) {
		dir, target := t.TempDir(), filepath.Join(root, "target.yaml")
		if err := os.WriteFile(target, []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		link := filepath.Join(dir, ociwf.SourceTitle)
		if err := os.Symlink(target, link); err != nil {
			t.Fatal(err)
		}
		if err := mem.Tag(ctx, desc, "1.0.0"); err != nil {
			t.Fatal(err)
		}
		_, err := ociwf.Pull(ctx, mem, "1.0.0", dir, ociwf.WriteOptions{Force: true})
		if !errors.Is(err, fs.ErrExist) {
			t.Fatalf("pull over a planted symlink: err = %v, want fs.ErrExist", err)
		}
		if got, _ := os.ReadFile(target); string(got) != "untouched" {
			t.Fatalf("the link's target was written: %q", got)
		}
		if fi, err := os.Lstat(link); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			t.Fatalf("the planted link was replaced: %v", err)
		}
		if ls, _ := os.ReadDir(dir); len(ls) != 1 {
			t.Fatalf("the refused pull left %d entries", len(ls))
		}
		os.Remove(target)
	})
}
