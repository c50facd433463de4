package mirror

import (
	"archive/tar"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

func layer(s string, ann map[string]string) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: dsseMediaType, Digest: digest.FromString(s), Size: int64(len(s)), Annotations: ann}
}

// TestMissingLayers: what a merge adds keeps the source's order, counts
// repeats, and tells entries apart by their whole descriptor (a cosign
// signature is an annotation on a layer that several signatures share).
func TestMissingLayers(t *testing.T) {
	a, b, c := layer("a", nil), layer("b", nil), layer("c", nil)
	aSigned := layer("a", map[string]string{"dev.cosignproject.cosign/signature": "MEUC"})
	for _, tc := range []struct {
		name       string
		have, want []ocispec.Descriptor
		add        []ocispec.Descriptor
	}{
		{"nothing new", []ocispec.Descriptor{a, b}, []ocispec.Descriptor{b, a}, nil},
		{"new after", []ocispec.Descriptor{c}, []ocispec.Descriptor{a, c, b}, []ocispec.Descriptor{a, b}},
		{"repeats count", []ocispec.Descriptor{a}, []ocispec.Descriptor{a, a}, []ocispec.Descriptor{a}},
		{"annotations count", []ocispec.Descriptor{a}, []ocispec.Descriptor{aSigned}, []ocispec.Descriptor{aSigned}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := missingLayers(tc.have, tc.want)
			if !slices.EqualFunc(got, tc.add, func(x, y ocispec.Descriptor) bool { return descriptorKey(x) == descriptorKey(y) }) {
				t.Fatalf("missingLayers = %v, want %v", got, tc.add)
			}
		})
	}
}

// TestUntarStaysInside: an archive naming paths outside the layout, or
// files that are not a layout's, extracts none of them.
func TestUntarStaysInside(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "evil.tar")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(f)
	for _, name := range []string{"../escape", "blobs/../../escape2", "/abs", "etc/passwd", "blobs/sha256/ok", "index.json"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: 2, Mode: 0o644})
		tw.Write([]byte("{}"))
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "blobs/sha256/link", Linkname: "/etc/passwd"})
	tw.Close()
	f.Close()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o755)
	if err := untar(file, out); err != nil {
		t.Fatal(err)
	}
	var got []string
	filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			got = append(got, filepath.ToSlash(rel))
		}
		return nil
	})
	want := []string{"evil.tar", "out/blobs/sha256/ok", "out/index.json"}
	if !slices.Equal(got, want) {
		t.Fatalf("files after untar: %v, want %v", got, want)
	}
}
