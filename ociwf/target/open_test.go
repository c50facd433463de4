package target_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"oras.land/oras-go/v2/content/oci"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

func opener(t *testing.T, layout bool) *target.Opener {
	t.Helper()
	o, err := target.New(target.Options{PlainHTTP: true, OCILayout: layout})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestOpenParsesReferences(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	// Open no longer creates a layout; OpenReadOnly needs one.
	if _, err := oci.New(layout); err != nil {
		t.Fatal(err)
	}
	dgst := "sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		layout          bool
		ref             string
		name, reference string // empty name: the reference is invalid
	}{
		{false, "127.0.0.1:5000/w/build", "127.0.0.1:5000/w/build", ""},
		{false, "127.0.0.1:5000/w/build:1.0.0", "127.0.0.1:5000/w/build", "1.0.0"},
		{false, "127.0.0.1:5000/w/build@" + dgst, "127.0.0.1:5000/w/build", dgst},
		{false, "127.0.0.1:5000/W/build:1.0.0", "", ""},
		{false, "127.0.0.1:5000/w/build:bad tag", "", ""},
		{false, "127.0.0.1:5000/w/build:", "", ""},
		{false, "127.0.0.1:5000/w/build@", "", ""},
		{false, "127.0.0.1:5000/w/build@sha256:abc", "", ""},
		{false, "build", "", ""},
		{true, layout, layout, ""},
		{true, layout + ":1.0.0", layout, "1.0.0"},
		{true, layout + "@" + dgst, layout, dgst},
		{true, layout + ":", "", ""},
		{true, layout + ":bad%tag", "", ""},
		{true, layout + "@", "", ""},
		{true, layout + "@sha256:abc", "", ""},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			tg, err := opener(t, c.layout).Open(ctx, c.ref)
			if c.name == "" {
				if !errors.Is(err, errdef.ErrInvalidReference) || !errors.Is(err, errdef.ErrInvalid) {
					t.Fatalf("Open: err = %v, want ErrInvalidReference", err)
				}
				if _, err := opener(t, c.layout).OpenReadOnly(ctx, c.ref); !errors.Is(err, errdef.ErrInvalidReference) {
					t.Fatalf("OpenReadOnly: err = %v, want ErrInvalidReference", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tg.Name != c.name || tg.Reference != c.reference {
				t.Fatalf("Open = %q, %q; want %q, %q", tg.Name, tg.Reference, c.name, c.reference)
			}
			src, err := opener(t, c.layout).OpenReadOnly(ctx, c.ref)
			if err != nil {
				t.Fatal(err)
			}
			if src.Name != c.name || src.Reference != c.reference {
				t.Fatalf("OpenReadOnly = %q, %q; want %q, %q", src.Name, src.Reference, c.name, c.reference)
			}
		})
	}
}

// TestOpenReadOnlyWritesNothing checks that opening a layout for reading
// neither creates a missing one nor writes to an existing empty directory.
func TestOpenReadOnlyWritesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{filepath.Join(dir, "typo"), empty} {
		_, err := opener(t, true).OpenReadOnly(ctx, path+":1.0.0")
		if err == nil || !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("OpenReadOnly %s: err = %v, want a missing layout", path, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "typo")); !os.IsNotExist(err) {
		t.Fatalf("a missing layout was created (%v)", err)
	}
	if entries, _ := os.ReadDir(empty); len(entries) != 0 {
		t.Fatalf("an empty directory got %d entries", len(entries))
	}
}
