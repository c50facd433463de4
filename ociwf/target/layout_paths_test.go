package target_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"ociwf.dev/ociwf/errdef"
)

// TestLayoutNeverWritesThroughPlantedLinks: a symbolic link planted in a
// layout directory where oras-go writes (index.json, oci-layout, blobs/,
// blobs/sha256/, ingest/), pointing outside, makes the first write fail
// with an error naming the link; nothing is written outside.
func TestLayoutNeverWritesThroughPlantedLinks(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		link string
		dir  bool   // the link points to a directory
		file string // or to a file holding this
	}{
		{ocispec.ImageIndexFile, false, `{"schemaVersion":2,"manifests":[]}`},
		{ocispec.ImageLayoutFile, false, `{"imageLayoutVersion":"1.0.0"}`},
		{ocispec.ImageBlobsDir, true, ""},
		{filepath.Join(ocispec.ImageBlobsDir, "sha256"), true, ""},
		{"ingest", true, ""},
	} {
		t.Run(c.link, func(t *testing.T) {
			root := t.TempDir()
			outside := filepath.Join(root, "outside")
			if c.dir {
				if err := os.Mkdir(outside, 0o755); err != nil {
					t.Fatal(err)
				}
			} else if err := os.WriteFile(outside, []byte(c.file), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(root, "layout")
			if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, c.link)), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(outside, filepath.Join(dir, c.link)); err != nil {
				t.Fatal(err)
			}
			tg, err := opener(t, true).Open(ctx, dir+":1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			_, err = oras.TagBytes(ctx, tg.Storage, "application/vnd.example+json", []byte(`{"x":1}`), "1.0.0")
			if !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("write through a planted %s link: err = %v, want ErrInvalid", c.link, err)
			}
			if c.dir {
				if ls, _ := os.ReadDir(outside); len(ls) != 0 {
					t.Fatalf("wrote %v outside the layout", ls)
				}
			} else if got, _ := os.ReadFile(outside); string(got) != c.file {
				t.Fatalf("wrote %q outside the layout", got)
			}
		})
	}
}
