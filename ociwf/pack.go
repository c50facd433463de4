package ociwf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf/errdef"
)

// PackOptions tune Pack. The zero value is valid and reproducible.
type PackOptions struct {
	// Created is recorded as org.opencontainers.image.created. Zero means
	// the Build's own Created (the time Compile was given), and when that
	// is zero too the Unix epoch, so the same input always packs to the
	// same digest.
	Created time.Time
	// Source and Revision fill org.opencontainers.image.source and
	// .revision (a repository URL and a commit), when not empty.
	Source   string
	Revision string
	// Annotations are extra manifest annotations; they may not override the
	// standard ones above.
	Annotations map[string]string
}

// Pack pushes the config, the three layers and the manifest of b to pusher
// (typically an in-memory store) and returns the manifest descriptor. A
// layer, the config or the manifest over its limit (MaxSourceBytes and the
// rest) is refused before anything is pushed, with an error matching
// errdef.ErrTooLarge.
func Pack(ctx context.Context, pusher content.Pusher, b *Build, opts PackOptions) (ocispec.Descriptor, error) {
	if b.SBOM == nil || b.Config == nil {
		return ocispec.Descriptor{}, fmt.Errorf("pack: the build has no SBOM or config (compiled with PlanOnly): %w", errdef.ErrInvalid)
	}
	if err := checkSizes(b); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pack: %w", err)
	}
	layers := []struct {
		mediaType, title string
		data             []byte
	}{
		{SourceMediaType, SourceTitle, b.Source},
		{PlanMediaType, PlanTitle, b.PlanJSON},
		{SBOMMediaType, SBOMTitle, b.SBOM},
	}
	descs := make([]ocispec.Descriptor, 0, len(layers))
	for _, l := range layers {
		d := content.NewDescriptorFromBytes(l.mediaType, l.data)
		d.Annotations = map[string]string{ocispec.AnnotationTitle: l.title}
		if err := pushBytes(ctx, pusher, d, l.data); err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("pack %s: %w", l.title, err)
		}
		descs = append(descs, d)
	}
	cfg := content.NewDescriptorFromBytes(ConfigMediaType, b.Config)
	if err := pushBytes(ctx, pusher, cfg, b.Config); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pack config: %w", err)
	}
	ann := make(map[string]string, len(opts.Annotations)+6)
	for k, v := range opts.Annotations {
		ann[k] = v
	}
	created := opts.Created
	if created.IsZero() {
		created = b.Created
	}
	if created.IsZero() {
		created = time.Unix(0, 0)
	}
	ann[ocispec.AnnotationCreated] = created.UTC().Format(time.RFC3339)
	ann[ocispec.AnnotationTitle] = b.Plan.Workflow.Name
	ann[ocispec.AnnotationVersion] = b.Plan.Workflow.Version
	if d := b.Plan.Workflow.Description; d != "" {
		ann[ocispec.AnnotationDescription] = d
	}
	if opts.Source != "" {
		ann[ocispec.AnnotationSource] = opts.Source
	}
	if opts.Revision != "" {
		ann[ocispec.AnnotationRevision] = opts.Revision
	}
	desc, err := oras.PackManifest(ctx, pusher, oras.PackManifestVersion1_1, ArtifactType, oras.PackManifestOptions{
		Layers:              descs,
		ConfigDescriptor:    &cfg,
		ManifestAnnotations: ann,
	})
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pack manifest: %w", err)
	}
	if desc.Size > MaxManifestBytes {
		return ocispec.Descriptor{}, fmt.Errorf("pack: the manifest would be %d bytes, over the %d-byte limit (its annotations hold metadata.description and every --annotation): %w", desc.Size, MaxManifestBytes, errdef.ErrTooLarge)
	}
	return desc, nil
}

// checkSizes refuses a Build whose layers or config are over the limits a
// reader enforces, so nothing is published that cannot be read back.
func checkSizes(b *Build) error {
	for _, p := range []struct {
		what string
		size int
		max  int64
	}{
		{"the workflow source (" + SourceTitle + ")", len(b.Source), MaxSourceBytes},
		{"the plan (" + PlanTitle + ")", len(b.PlanJSON), MaxPlanBytes},
		{"the SBOM (" + SBOMTitle + ")", len(b.SBOM), MaxSBOMBytes},
		{"the config blob (it holds metadata.description)", len(b.Config), MaxConfigBytes},
	} {
		if int64(p.size) > p.max {
			return fmt.Errorf("%s is %d bytes, over the %d-byte limit: %w", p.what, p.size, p.max, errdef.ErrTooLarge)
		}
	}
	return nil
}

func pushBytes(ctx context.Context, pusher content.Pusher, d ocispec.Descriptor, data []byte) error {
	err := pusher.Push(ctx, d, bytes.NewReader(data))
	if err != nil && !errors.Is(err, orasdef.ErrAlreadyExists) {
		return err
	}
	return nil
}
