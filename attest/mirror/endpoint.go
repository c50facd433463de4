package mirror

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// Kind is what a copy reference names.
type Kind string

// The places a copy reads from and writes to. A reference names a
// registry repository as ociwf's other commands take it; the prefixes
// oci: and tar: (skopeo's spelling for the first) name an OCI image
// layout directory and a tar archive of one.
const (
	Registry Kind = "registry"   // registry/repository[:TAG|@DIGEST]
	Layout   Kind = "oci-layout" // oci:DIR[:TAG|@DIGEST]
	Tar      Kind = "tar"        // tar:FILE[:TAG|@DIGEST]
)

// Split returns the kind of place ref names and the reference without
// its prefix.
func Split(ref string) (Kind, string) {
	switch {
	case strings.HasPrefix(ref, "oci:"):
		return Layout, ref[len("oci:"):]
	case strings.HasPrefix(ref, "tar:"):
		return Tar, ref[len("tar:"):]
	}
	return Registry, ref
}

// Opener opens copy sources and destinations.
type Opener struct {
	registry, layout *target.Opener
}

// NewOpener returns an Opener reaching registries as opts say (OCILayout
// is ignored: the reference's prefix says).
func NewOpener(opts target.Options) (*Opener, error) {
	opts.OCILayout = false
	reg, err := target.New(opts)
	if err != nil {
		return nil, err
	}
	opts.OCILayout = true
	lay, err := target.New(opts)
	if err != nil {
		return nil, err
	}
	return &Opener{registry: reg, layout: lay}, nil
}

// Registries returns the Opener used for registry references.
func (o *Opener) Registries() *target.Opener { return o.registry }

// Source is a place a copy reads from.
type Source struct {
	Kind Kind
	target.Ref
	Storage oras.ReadOnlyGraphTarget
}

// OpenSource opens ref for reading; it writes nothing anywhere.
func (o *Opener) OpenSource(ctx context.Context, ref string) (*Source, error) {
	kind, rest := Split(ref)
	switch kind {
	case Registry:
		s, err := o.registry.OpenReadOnly(ctx, rest)
		if err != nil {
			return nil, err
		}
		return &Source{Kind: kind, Ref: s.Ref, Storage: s.Storage}, nil
	case Layout:
		s, err := o.layout.OpenReadOnly(ctx, rest)
		if err != nil {
			return nil, err
		}
		return &Source{Kind: kind, Ref: s.Ref, Storage: s.Storage}, nil
	}
	r, err := o.parseFile(ctx, rest)
	if err != nil {
		return nil, err
	}
	st, err := oci.NewFromTar(ctx, r.Name)
	if err != nil {
		return nil, fmt.Errorf("open the OCI layout archive %s: %w", r.Name, err)
	}
	return &Source{Kind: kind, Ref: r, Storage: st}, nil
}

// parseFile parses FILE[:TAG|@DIGEST] as a layout reference is parsed.
func (o *Opener) parseFile(ctx context.Context, ref string) (target.Ref, error) {
	// Open parses without touching the disk: a layout is created by its
	// first write, and nothing is written to this one.
	t, err := o.layout.Open(ctx, ref)
	if err != nil {
		return target.Ref{}, err
	}
	return t.Ref, nil
}

// Destination is a place a copy writes to. A tar destination is built in
// a staging layout next to its file (holding what the file held before)
// and written by Commit; Close removes the staging layout.
type Destination struct {
	Kind Kind
	target.Ref
	Storage oras.GraphTarget

	staging string
	store   *oci.Store   // the staging layout of a tar destination
	changed *atomic.Bool // set by a write to it
}

// changes records whether anything was pushed or tagged.
type changes struct {
	oras.GraphTarget
	changed *atomic.Bool
}

func (c changes) Push(ctx context.Context, desc ocispec.Descriptor, r io.Reader) error {
	c.changed.Store(true)
	return c.GraphTarget.Push(ctx, desc, r)
}

func (c changes) Tag(ctx context.Context, desc ocispec.Descriptor, ref string) error {
	c.changed.Store(true)
	return c.GraphTarget.Tag(ctx, desc, ref)
}

// OpenDestination opens ref for writing; a layout directory is created by
// the first write, a tar file by Commit.
func (o *Opener) OpenDestination(ctx context.Context, ref string) (*Destination, error) {
	kind, rest := Split(ref)
	switch kind {
	case Registry:
		t, err := o.registry.Open(ctx, rest)
		if err != nil {
			return nil, err
		}
		if repo, ok := t.Storage.(*remote.Repository); ok {
			// On a registry without the referrers API, oras-go keeps the
			// fallback tag sha256-<hex> up to date; a copy never deletes,
			// so the index it replaces is left for the registry's garbage
			// collection.
			repo.SkipReferrersGC = true
		}
		return &Destination{Kind: kind, Ref: t.Ref, Storage: t.Storage}, nil
	case Layout:
		t, err := o.layout.Open(ctx, rest)
		if err != nil {
			return nil, err
		}
		return &Destination{Kind: kind, Ref: t.Ref, Storage: t.Storage}, nil
	}
	r, err := o.parseFile(ctx, rest)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(r.Name)
	if err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(filepath.Dir(abs), "."+filepath.Base(abs)+".staging-")
	if err != nil {
		return nil, fmt.Errorf("stage the OCI layout archive %s: %w", r.Name, err)
	}
	d := &Destination{Kind: kind, Ref: r, staging: staging}
	if err := untar(r.Name, staging); err != nil && !errors.Is(err, fs.ErrNotExist) {
		d.Close()
		return nil, fmt.Errorf("read the existing archive %s: %w", r.Name, err)
	}
	st, err := oci.NewWithContext(ctx, staging)
	if err != nil {
		d.Close()
		return nil, fmt.Errorf("open the staging layout of %s: %w", r.Name, err)
	}
	// The staging layout is discarded unless the copy completes, so its
	// index is written once, by Commit, not rewritten at every push (which
	// costs time quadratic in the versions).
	st.AutoSaveIndex = false
	d.store, d.changed = st, new(atomic.Bool)
	d.Storage = changes{st, d.changed}
	return d, nil
}

// Commit finishes a tar destination: it writes the staging layout to the
// file, replacing it atomically, unless the copy wrote nothing to an
// archive already there. It does nothing for other kinds.
func (d *Destination) Commit(ctx context.Context) error {
	if d.Kind != Tar {
		return nil
	}
	if _, err := os.Stat(d.Name); err == nil && !d.changed.Load() {
		return nil
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := d.store.SaveIndex(); err != nil {
		return fmt.Errorf("write the index of %s: %w", d.Name, err)
	}
	return writeTar(d.staging, d.Name)
}

// Reader returns the destination for reading what was written: for a
// tar destination, the committed file.
func (d *Destination) Reader(ctx context.Context) (oras.ReadOnlyGraphTarget, error) {
	if d.Kind != Tar {
		return d.Storage, nil
	}
	st, err := oci.NewFromTar(ctx, d.Name)
	if err != nil {
		return nil, fmt.Errorf("reopen the OCI layout archive %s: %w", d.Name, err)
	}
	return st, nil
}

// Close removes a tar destination's staging layout.
func (d *Destination) Close() error {
	if d.staging == "" {
		return nil
	}
	return os.RemoveAll(d.staging)
}

// writeTar writes the layout in dir to file as a tar archive (regular
// files, sorted, no owners or times), through a temporary file renamed
// over it.
func writeTar(dir, file string) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	tw := tar.NewWriter(tmp)
	err = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		name := filepath.ToSlash(rel)
		if e.IsDir() {
			return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, Format: tar.FormatPAX})
		}
		if !e.Type().IsRegular() {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: info.Size(), Mode: 0o644, Format: tar.FormatPAX}); err != nil {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(tw, f)
		return err
	})
	if err == nil {
		err = tw.Close()
	}
	if err == nil {
		err = tmp.Sync()
	}
	if err == nil {
		err = tmp.Close()
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	return nil
}

// untar extracts the OCI layout in the tar archive file into dir: the
// oci-layout file, index.json and blobs/, regular files only, each name
// checked to stay inside dir. Other entries are skipped.
func untar(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%w: %w", err, errdef.ErrInvalid)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		if h.Typeflag != tar.TypeReg || !fs.ValidPath(name) ||
			(name != ocispec.ImageLayoutFile && name != ocispec.ImageIndexFile && !strings.HasPrefix(name, ocispec.ImageBlobsDir+"/")) {
			continue
		}
		out := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
			return err
		}
		w, err := os.OpenFile(out, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		_, err = io.Copy(w, tr)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
}
