package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
)

// tagAccessory points the cosign tag at dst to what td (the source's
// manifest for it, already copied) holds: it tags td when dst has no such
// tag, leaves a tag naming td as it is, and otherwise merges. It reports
// whether it merged.
func (r *Result) tagAccessory(ctx context.Context, src content.Fetcher, dst oras.GraphTarget, td ocispec.Descriptor, tag string) (bool, error) {
	cur, err := dst.Resolve(ctx, tag)
	switch {
	case errors.Is(err, orasdef.ErrNotFound):
		raw, err := ociwf.FetchAll(ctx, src, td, ociwf.MaxManifestBytes)
		if err != nil {
			return false, err
		}
		return false, pushTagged(ctx, dst, td, raw, tag)
	case err != nil:
		return false, err
	case cur.Digest == td.Digest:
		return false, nil
	}
	return r.merge(ctx, src, dst, td, cur, tag)
}

// merge writes under tag at dst a manifest holding every layer of the
// manifest there now (cur), in its order, then the layers of the source's
// (td) it lacks, as cosign itself appends a signature (go-containerregistry
// mutate.Append: a diff ID and an empty history entry per layer added to
// the config). A layer is the same when its whole descriptor is, as the
// registry's append-only rule compares them, counting repeats. Nothing is
// written when cur already holds every layer of td.
func (r *Result) merge(ctx context.Context, src content.Fetcher, dst oras.GraphTarget, td, cur ocispec.Descriptor, tag string) (bool, error) {
	have, err := readManifest(ctx, dst, cur)
	if err != nil {
		return false, fmt.Errorf("the destination's %s: %w", tag, err)
	}
	want, err := readManifest(ctx, src, td)
	if err != nil {
		return false, fmt.Errorf("the source's %s: %w", tag, err)
	}
	add := missingLayers(have.Layers, want.Layers)
	if len(add) == 0 {
		return false, nil
	}
	rawCfg, err := ociwf.FetchAll(ctx, dst, have.Config, ociwf.MaxManifestBytes)
	if err != nil {
		return false, fmt.Errorf("the destination's %s config: %w", tag, err)
	}
	cfg, err := v1.ParseConfigFile(bytes.NewReader(rawCfg))
	if err != nil {
		return false, fmt.Errorf("the destination's %s config %s does not decode: %v: %w", tag, have.Config.Digest, err, errdef.ErrVerification)
	}
	for _, l := range add {
		h, err := v1.NewHash(l.Digest.String())
		if err != nil {
			return false, fmt.Errorf("layer %s of the source's %s: %w: %w", l.Digest, tag, err, errdef.ErrVerification)
		}
		// Signatures and attestations are stored uncompressed: a diff ID
		// is the layer's digest.
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, h)
		cfg.History = append(cfg.History, v1.History{})
	}
	newCfg, err := json.Marshal(cfg)
	if err != nil {
		return false, err
	}
	cfgDesc := content.NewDescriptorFromBytes(have.Config.MediaType, newCfg)
	if err := pushBlob(ctx, dst, cfgDesc, newCfg); err != nil {
		return false, fmt.Errorf("push the merged %s config: %w", tag, err)
	}
	r.wrote(cfgDesc)
	have.Config = cfgDesc
	have.Layers = append(have.Layers, add...)
	raw, err := json.Marshal(have)
	if err != nil {
		return false, err
	}
	desc := content.NewDescriptorFromBytes(have.MediaType, raw)
	if err := pushTagged(ctx, dst, desc, raw, tag); err != nil {
		return false, err
	}
	r.wrote(desc)
	return true, nil
}

// missingLayers returns the layers of want that have lacks, in want's
// order, a layer matching when its whole descriptor does, repeats counted.
func missingLayers(have, want []ocispec.Descriptor) []ocispec.Descriptor {
	count := map[string]int{}
	for _, l := range have {
		count[descriptorKey(l)]++
	}
	var out []ocispec.Descriptor
	for _, l := range want {
		k := descriptorKey(l)
		if count[k] > 0 {
			count[k]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// descriptorKey identifies a descriptor by every field it has.
func descriptorKey(d ocispec.Descriptor) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// readManifest reads and decodes an image manifest, verified, at most
// ociwf.MaxManifestBytes.
func readManifest(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	raw, err := ociwf.FetchAll(ctx, src, desc, ociwf.MaxManifestBytes)
	if err != nil {
		return nil, err
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("manifest %s does not decode: %v: %w", desc.Digest, err, errdef.ErrVerification)
	}
	if m.MediaType == "" {
		m.MediaType = desc.MediaType
	}
	return &m, nil
}

// pushBlob pushes a blob unless dst has it.
func pushBlob(ctx context.Context, dst oras.GraphTarget, desc ocispec.Descriptor, raw []byte) error {
	ok, err := dst.Exists(ctx, desc)
	if err != nil || ok {
		return err
	}
	if err := dst.Push(ctx, desc, bytes.NewReader(raw)); err != nil && !errors.Is(err, orasdef.ErrAlreadyExists) {
		return err
	}
	return nil
}

// pushTagged stores the manifest raw under tag: one PUT by tag on a
// registry, a push and a tag elsewhere.
func pushTagged(ctx context.Context, dst oras.GraphTarget, desc ocispec.Descriptor, raw []byte, tag string) error {
	if rp, ok := dst.(registry.ReferencePusher); ok {
		return rp.PushReference(ctx, desc, bytes.NewReader(raw), tag)
	}
	if err := pushBlob(ctx, dst, desc, raw); err != nil {
		return err
	}
	return dst.Tag(ctx, desc, tag)
}
