package ociwf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"

	"ociwf.dev/ociwf/errdef"
)

// Pulled describes a workflow written to disk by Pull.
type Pulled struct {
	// Descriptor is the manifest the reference resolved to.
	Descriptor ocispec.Descriptor `json:"descriptor"`
	// Config is the decoded config blob.
	Config Config `json:"config"`
	// Files are the paths written: source, plan and SBOM, in that order.
	Files []string `json:"files"`
}

// WriteOptions tune how Pull and WriteLayers install the three files. The
// zero value refuses to replace existing files.
type WriteOptions struct {
	// Force replaces existing files of the same names. A directory or
	// other non-regular file in the way is never replaced.
	Force bool
}

// Pull resolves ref on src once, then fetches the manifest, the config and
// the three layers by digest, re-checking every digest and size while
// streaming, and writes the layers into dir under their titles. The files
// appear all three or none: every destination is checked before any is
// replaced, and a failure midway puts back what was there. An existing file
// is an error matching fs.ErrExist unless opts.Force. Verification failures
// wrap errdef.ErrVerification.
func Pull(ctx context.Context, src oras.ReadOnlyTarget, ref, dir string, opts WriteOptions) (*Pulled, error) {
	desc, m, cfg, err := fetchHead(ctx, src, ref)
	if err != nil {
		return nil, err
	}
	files, err := writeLayers(dir, m, opts, func(p Part, w io.Writer) error {
		if err := fetchTo(ctx, src, p.Descriptor, p.Limit, w); err != nil {
			return fmt.Errorf("%s: %w", p.Name, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &Pulled{Descriptor: desc, Config: *cfg, Files: files}, nil
}

// destination is where one layer's file goes and whether a file is there.
type destination struct {
	path   string
	exists bool
}

// destinations checks where each layer's file goes in dir: a directory or
// other non-regular file there is an error, and so is an existing file
// unless opts.Force.
func destinations(dir string, layers []ocispec.Descriptor, opts WriteOptions) ([]destination, error) {
	out := make([]destination, 0, len(layers))
	for _, l := range layers {
		path := filepath.Join(dir, l.Annotations[ocispec.AnnotationTitle])
		fi, err := os.Lstat(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, destination{path: path})
			continue
		case err != nil:
			return nil, fmt.Errorf("pull: %w", err)
		case !fi.Mode().IsRegular():
			return nil, fmt.Errorf("pull: %s is in the way and is not a regular file (%s); nothing was written: %w", path, fi.Mode().Type(), fs.ErrExist)
		case !opts.Force:
			return nil, fmt.Errorf("pull: %s exists; nothing was written (choose another --output-dir or pass --force to replace it): %w", path, fs.ErrExist)
		}
		out = append(out, destination{path: path, exists: true})
	}
	return out, nil
}

// install renames each layer's temporary file to its title in dir, all or
// none: every destination is checked first, the files being replaced are
// moved aside until all three new ones are in place, and a failure midway
// removes what was installed and puts the old files back. The temporary
// files are gone afterwards.
func install(dir string, layers []ocispec.Descriptor, temps []string, opts WriteOptions) (files []string, err error) {
	defer cleanup(temps, nil)
	dsts, err := destinations(dir, layers, opts)
	if err != nil {
		return nil, err
	}
	backups := make([]string, len(dsts))
	installed := 0
	defer func() {
		if err != nil {
			for i := installed - 1; i >= 0; i-- {
				os.Remove(dsts[i].path)
			}
		}
		for i, b := range backups {
			switch {
			case b == "":
			case err == nil:
				os.Remove(b)
			default:
				if rerr := os.Rename(b, dsts[i].path); rerr != nil {
					err = fmt.Errorf("%w; put back %s from %s: %w", err, dsts[i].path, b, rerr)
				}
			}
		}
	}()
	for i, d := range dsts {
		if !d.exists {
			continue
		}
		b, err := createTemp(dir, ".ociwf-old-*", nil)
		if err != nil {
			return nil, err
		}
		if err := os.Rename(d.path, b); err != nil {
			os.Remove(b)
			return nil, fmt.Errorf("pull: %w", err)
		}
		backups[i] = b
	}
	files = make([]string, 0, len(dsts))
	for i, d := range dsts {
		if err := os.Rename(temps[i], d.path); err != nil {
			return nil, fmt.Errorf("pull: %w", err)
		}
		installed++
		files = append(files, d.path)
	}
	return files, nil
}

// WriteLayers writes the source, plan and SBOM of m, already fetched and
// verified, into dir under their titles. As with Pull, the files appear all
// three or none, and existing files are replaced only with opts.Force.
func WriteLayers(dir string, m *Manifest, source, planJSON, sbom []byte, opts WriteOptions) ([]string, error) {
	data := map[string][]byte{m.Source.Digest.String(): source, m.Plan.Digest.String(): planJSON, m.SBOM.Digest.String(): sbom}
	return writeLayers(dir, m, opts, func(p Part, w io.Writer) error {
		_, err := w.Write(data[p.Descriptor.Digest.String()])
		return err
	})
}

// writeLayers writes the three layers of m into dir under their titles,
// all or none: every destination is checked first, write fills one
// temporary file per layer, and install moves them into place.
func writeLayers(dir string, m *Manifest, opts WriteOptions, write func(p Part, w io.Writer) error) ([]string, error) {
	layers := []ocispec.Descriptor{m.Source, m.Plan, m.SBOM}
	// Refuse before writing anything; install checks again.
	if _, err := destinations(dir, layers, opts); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	temps := make([]string, 0, len(layers))
	for _, p := range m.Parts()[1:] {
		tmp, err := createTemp(dir, ".ociwf-pull-*", func(w io.Writer) error { return write(p, w) })
		if err != nil {
			return nil, cleanup(temps, err)
		}
		temps = append(temps, tmp)
	}
	return install(dir, layers, temps, opts)
}

// createTemp creates a file with a fresh name in dir, lets write (if not
// nil) fill it, makes it readable by all and returns its name. On failure
// nothing is left behind.
func createTemp(dir, pattern string, write func(io.Writer) error) (string, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	if write != nil {
		err = write(f)
	}
	if err == nil {
		if err = f.Chmod(0o644); err != nil {
			err = fmt.Errorf("pull: %w", err)
		}
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("pull: %w", cerr)
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}

// cleanup removes temporary files and returns err.
func cleanup(temps []string, err error) error {
	for _, t := range temps {
		os.Remove(t)
	}
	return err
}

// FetchManifest resolves ref once and fetches the manifest by the resolved
// digest, verifying its bytes and checking that it is a workflow manifest.
func FetchManifest(ctx context.Context, src oras.ReadOnlyTarget, ref string) (ocispec.Descriptor, *Manifest, error) {
	desc, err := src.Resolve(ctx, ref)
	if err != nil {
		return desc, nil, fmt.Errorf("resolve %q: %w", ref, err)
	}
	m, err := ReadManifest(ctx, src, desc)
	if err != nil {
		return desc, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	return desc, m, nil
}

// ReadManifest fetches the manifest desc names, at most MaxManifestBytes,
// verifies its bytes (a *ContentError when they are not what desc says) and
// parses it with ParseManifest.
func ReadManifest(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor) (*Manifest, error) {
	raw, err := FetchAll(ctx, src, desc, MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	return ParseManifest(raw)
}

// fetchHead resolves ref once and fetches, verified, the manifest and the
// config it names.
func fetchHead(ctx context.Context, src oras.ReadOnlyTarget, ref string) (ocispec.Descriptor, *Manifest, *Config, error) {
	desc, m, err := FetchManifest(ctx, src, ref)
	if err != nil {
		return desc, nil, nil, err
	}
	cfg, err := FetchConfig(ctx, src, m)
	if err != nil {
		return desc, nil, nil, err
	}
	return desc, m, cfg, nil
}

// FetchConfig fetches and decodes the config blob of m, verifying it.
func FetchConfig(ctx context.Context, src content.Fetcher, m *Manifest) (*Config, error) {
	raw, err := FetchAll(ctx, src, m.Config, MaxConfigBytes)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, errdef.ErrNotWorkflow)
	}
	return &cfg, nil
}
