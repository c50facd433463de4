package ociwf

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

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

// Pull resolves ref on src once, then fetches the manifest, the config and
// the three layers by digest, re-checking every digest and size while
// streaming, and writes the layers into dir under their titles. Files appear
// only after all three verified; a failure leaves dir as it was.
// Verification failures wrap errdef.ErrVerification.
func Pull(ctx context.Context, src oras.ReadOnlyTarget, ref, dir string) (*Pulled, error) {
	desc, m, err := FetchManifest(ctx, src, ref)
	if err != nil {
		return nil, err
	}
	cfg, err := FetchConfig(ctx, src, m)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	layers := []ocispec.Descriptor{m.Source, m.Plan, m.SBOM}
	temps := make([]string, 0, len(layers))
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, l := range layers {
		tmp, err := fetchToTemp(ctx, src, l, dir)
		if tmp != "" {
			temps = append(temps, tmp)
		}
		if err != nil {
			return nil, err
		}
	}
	files, err := install(dir, layers, temps)
	temps = nil
	if err != nil {
		return nil, err
	}
	return &Pulled{Descriptor: desc, Config: *cfg, Files: files}, nil
}

// install renames each layer's temporary file to its title in dir; the
// temporary files are gone afterwards.
func install(dir string, layers []ocispec.Descriptor, temps []string) ([]string, error) {
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	files := make([]string, 0, len(layers))
	for i, l := range layers {
		path := filepath.Join(dir, l.Annotations[ocispec.AnnotationTitle])
		if err := os.Rename(temps[i], path); err != nil {
			return nil, fmt.Errorf("pull: %w", err)
		}
		files = append(files, path)
	}
	return files, nil
}

// WriteLayers writes the source, plan and SBOM of m, already fetched and
// verified, into dir under their titles. Each goes to a temporary file
// first; the files appear only when all three are written.
func WriteLayers(dir string, m *Manifest, source, planJSON, sbom []byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pull: %w", err)
	}
	layers := []ocispec.Descriptor{m.Source, m.Plan, m.SBOM}
	temps := make([]string, 0, len(layers))
	for _, b := range [][]byte{source, planJSON, sbom} {
		f, err := os.CreateTemp(dir, ".ociwf-pull-*")
		if err != nil {
			return nil, cleanup(temps, fmt.Errorf("pull: %w", err))
		}
		temps = append(temps, f.Name())
		_, err = f.Write(b)
		if err == nil {
			err = f.Chmod(0o644)
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, cleanup(temps, fmt.Errorf("pull: %w", err))
		}
	}
	return install(dir, layers, temps)
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
	if desc.Size > MaxManifestBytes {
		return desc, nil, fmt.Errorf("manifest %s is %d bytes, over the %d byte limit: %w", desc.Digest, desc.Size, MaxManifestBytes, errdef.ErrTooLarge)
	}
	raw, err := fetchAll(ctx, src, desc)
	if err != nil {
		return desc, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return desc, nil, fmt.Errorf("%s: %w", desc.Digest, err)
	}
	return desc, m, nil
}

// FetchConfig fetches and decodes the config blob of m, verifying it.
func FetchConfig(ctx context.Context, src content.Fetcher, m *Manifest) (*Config, error) {
	raw, err := fetchAll(ctx, src, m.Config)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("config %s: %v: %w", m.Config.Digest, err, errdef.ErrNotWorkflow)
	}
	return &cfg, nil
}

// fetchAll reads a blob fully, verifying digest and size.
func fetchAll(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		return nil, verifyErr(err)
	}
	defer rc.Close()
	b, err := content.ReadAll(rc, desc)
	if err != nil {
		return nil, verifyErr(err)
	}
	return b, nil
}

// fetchToTemp streams a blob into a temporary file in dir through oras-go's
// VerifyReader, which checks the size as it reads and the digest at the end.
func fetchToTemp(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor, dir string) (string, error) {
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		return "", fmt.Errorf("fetch %s: %w", desc.Digest, verifyErr(err))
	}
	defer rc.Close()
	f, err := os.CreateTemp(dir, ".ociwf-pull-*")
	if err != nil {
		return "", fmt.Errorf("pull: %w", err)
	}
	defer f.Close()
	vr := content.NewVerifyReader(rc, desc)
	if _, err := io.Copy(f, vr); err != nil {
		return f.Name(), fmt.Errorf("blob %s: %w", desc.Digest, verifyErr(err))
	}
	if err := vr.Verify(); err != nil {
		return f.Name(), fmt.Errorf("blob %s: %w", desc.Digest, verifyErr(err))
	}
	if err := f.Chmod(0o644); err != nil {
		return f.Name(), fmt.Errorf("pull: %w", err)
	}
	if err := f.Close(); err != nil {
		return f.Name(), fmt.Errorf("pull: %w", err)
	}
	return f.Name(), nil
}

// verifyErr marks content that does not match its descriptor as a
// verification failure. oras-go's remote client has no sentinel for a
// response whose Content-Length differs from the descriptor's size, so that
// one is recognised by its message.
func verifyErr(err error) error {
	if errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, content.ErrInvalidDescriptorSize) ||
		strings.Contains(err.Error(), "mismatch Content-Length") {
		return fmt.Errorf("%w: %w", errdef.ErrVerification, err)
	}
	return err
}
