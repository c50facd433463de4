package target

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/oci"
	orasErrdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf/errdef"
)

// layout is an OCI image layout opened for writing that is created on its
// first write, not when it is opened: a push that fails before writing (a
// refused tag, a workflow that does not compile) leaves no directory
// behind. Until then, reads find nothing, or the layout already there.
type layout struct {
	dir string

	mu    sync.Mutex
	store *oci.Store
}

// open returns the store, creating the layout when create is set; without
// it and without a layout on disk it returns nil.
func (l *layout) open(ctx context.Context, create bool) (*oci.Store, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.store != nil {
		return l.store, nil
	}
	if !create {
		if _, err := os.Stat(filepath.Join(l.dir, ocispec.ImageLayoutFile)); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	if err := checkLayoutPaths(l.dir); err != nil {
		return nil, err
	}
	s, err := oci.NewWithContext(ctx, l.dir)
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", l.dir, err)
	}
	l.store = s
	return s, nil
}

// checkLayoutPaths refuses a layout whose files or directories that
// oras-go writes through (oci-layout, index.json, blobs/, blobs/ALG/ and
// ingest/) are symbolic links or of another kind than they should be: a
// link planted there would make a write land outside the layout. Blobs
// themselves are written by renaming a new file over their path, which
// replaces a link rather than following it.
func checkLayoutPaths(dir string) error {
	check := func(rel string, wantDir bool) error {
		fi, err := os.Lstat(filepath.Join(dir, rel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil
		case err != nil:
			return fmt.Errorf("open OCI layout %s: %w", dir, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return fmt.Errorf("open OCI layout %s: %s is a symbolic link, and a write through it could land outside the layout; remove it or choose another directory: %w", dir, rel, errdef.ErrInvalid)
		case wantDir && !fi.IsDir(), !wantDir && !fi.Mode().IsRegular():
			return fmt.Errorf("open OCI layout %s: %s is a %s, not what an OCI layout holds there; remove it or choose another directory: %w", dir, rel, kind(fi.Mode()), errdef.ErrInvalid)
		}
		return nil
	}
	for _, p := range []struct {
		rel string
		dir bool
	}{{ocispec.ImageLayoutFile, false}, {ocispec.ImageIndexFile, false}, {ocispec.ImageBlobsDir, true}, {"ingest", true}} {
		if err := check(p.rel, p.dir); err != nil {
			return err
		}
	}
	algs, err := os.ReadDir(filepath.Join(dir, ocispec.ImageBlobsDir))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("open OCI layout %s: %w", dir, err)
	}
	for _, a := range algs {
		if err := check(filepath.Join(ocispec.ImageBlobsDir, a.Name()), true); err != nil {
			return err
		}
	}
	return nil
}

// kind names a file mode's type.
func kind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m.IsRegular():
		return "regular file"
	}
	return "special file (" + m.Type().String() + ")"
}

func (l *layout) notFound(what string) error {
	return fmt.Errorf("%s: no OCI layout at %s yet: %w", what, l.dir, orasErrdef.ErrNotFound)
}

func (l *layout) Fetch(ctx context.Context, target ocispec.Descriptor) (io.ReadCloser, error) {
	s, err := l.open(ctx, false)
	if err != nil || s == nil {
		return nil, errors.Join(err, l.notFound(target.Digest.String()))
	}
	return s.Fetch(ctx, target)
}

func (l *layout) Exists(ctx context.Context, target ocispec.Descriptor) (bool, error) {
	s, err := l.open(ctx, false)
	if err != nil || s == nil {
		return false, err
	}
	return s.Exists(ctx, target)
}

func (l *layout) Resolve(ctx context.Context, reference string) (ocispec.Descriptor, error) {
	s, err := l.open(ctx, false)
	if err != nil || s == nil {
		return ocispec.Descriptor{}, errors.Join(err, l.notFound(reference))
	}
	return s.Resolve(ctx, reference)
}

func (l *layout) Predecessors(ctx context.Context, node ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	s, err := l.open(ctx, false)
	if err != nil || s == nil {
		return nil, err
	}
	return s.Predecessors(ctx, node)
}

func (l *layout) Push(ctx context.Context, expected ocispec.Descriptor, r io.Reader) error {
	s, err := l.open(ctx, true)
	if err != nil {
		return err
	}
	return s.Push(ctx, expected, r)
}

func (l *layout) Tag(ctx context.Context, desc ocispec.Descriptor, reference string) error {
	s, err := l.open(ctx, true)
	if err != nil {
		return err
	}
	return s.Tag(ctx, desc, reference)
}

// Tags lists the layout's tags, none before its first write; with it a
// layout opened for writing is a registry.TagLister, as oci.Store is.
func (l *layout) Tags(ctx context.Context, last string, fn func(tags []string) error) error {
	s, err := l.open(ctx, false)
	if err != nil || s == nil {
		return err
	}
	return s.Tags(ctx, last, fn)
}
