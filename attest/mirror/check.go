package mirror

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// Media types and annotations that tell accessories apart.
const (
	simpleSigningMediaType    = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseMediaType             = "application/vnd.dsse.envelope.v1+json"
	bundleMediaTypePrefix     = "application/vnd.dev.sigstore.bundle"
	predicateTypeAnnotation   = "predicateType"
	bundlePredicateAnnotation = "dev.sigstore.bundle.predicateType"
)

// Check re-reads from dst what a copy of the version desc wrote (res says
// what the source held): the version tag, every manifest and blob of the
// version and of its accessories, each re-hashed as it streams, and checks
// that every referrer of the source is a referrer at dst and that every
// cosign tag at dst holds every entry the source's does. It counts the
// accessories into res. Missing accessories are a *MissingError; content
// that is not what its descriptor says an *ociwf.ContentError.
func Check(ctx context.Context, dst oras.ReadOnlyGraphTarget, desc ocispec.Descriptor, res *Result) error {
	c := checker{dst: dst, seen: map[digest.Digest]bool{}}
	res.Accessories = map[string]int{}
	res.LifecycleEvents, res.Approvals = 0, 0
	if res.Tag != "" {
		got, err := dst.Resolve(ctx, res.Tag)
		if err != nil {
			return fmt.Errorf("check the copy: resolve %s at the destination: %w", res.Tag, err)
		}
		if got.Digest != desc.Digest {
			return fmt.Errorf("check the copy: tag %s names %s at the destination, not %s: %w", res.Tag, got.Digest, desc.Digest, errdef.ErrVerification)
		}
	}
	if _, err := c.manifest(ctx, desc); err != nil {
		return fmt.Errorf("check the copy of %s: %w", desc.Digest, err)
	}
	var missing []string
	have, err := Referrers(ctx, dst, desc)
	if err != nil {
		return fmt.Errorf("check the copy: list the referrers of %s at the destination: %w", desc.Digest, err)
	}
	for _, r := range res.Referrers {
		if !slices.ContainsFunc(have, func(h ocispec.Descriptor) bool { return h.Digest == r.Digest }) {
			missing = append(missing, fmt.Sprintf("referrer %s (%s)", r.Digest, describe(r)))
		}
	}
	for _, r := range have {
		m, err := c.manifest(ctx, r)
		if err != nil {
			return fmt.Errorf("check the copy: referrer %s: %w", r.Digest, err)
		}
		count(res, m)
	}
	for _, suffix := range tagSuffixes {
		tag := accessoryTag(desc.Digest, suffix)
		want, inSource := res.Tags[tag]
		cur, err := dst.Resolve(ctx, tag)
		switch {
		case errors.Is(err, orasdef.ErrNotFound) && inSource:
			missing = append(missing, "tag "+tag)
			continue
		case errors.Is(err, orasdef.ErrNotFound):
			continue
		case err != nil:
			return fmt.Errorf("check the copy: resolve %s at the destination: %w", tag, err)
		}
		m, err := c.manifest(ctx, cur)
		if err != nil {
			return fmt.Errorf("check the copy: %s: %w", tag, err)
		}
		count(res, m)
		if !inSource {
			continue
		}
		wm, err := readManifest(ctx, dst, want)
		if err != nil {
			return fmt.Errorf("check the copy: the source's %s as copied: %w", tag, err)
		}
		for _, l := range missingLayers(m.Layers, wm.Layers) {
			missing = append(missing, fmt.Sprintf("tag %s entry %s (%s)", tag, l.Digest, l.MediaType))
		}
	}
	if len(missing) > 0 {
		return &MissingError{Missing: missing}
	}
	return nil
}

// checker re-reads content from a destination, each digest once.
type checker struct {
	dst  oras.ReadOnlyGraphTarget
	seen map[digest.Digest]bool
}

// manifest reads the image manifest desc names, verified, and re-hashes
// its config and layers.
func (c *checker) manifest(ctx context.Context, desc ocispec.Descriptor) (*ocispec.Manifest, error) {
	m, err := readManifest(ctx, c.dst, desc)
	if err != nil {
		return nil, err
	}
	for _, b := range append([]ocispec.Descriptor{m.Config}, m.Layers...) {
		if err := c.blob(ctx, b); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// blob streams the blob desc names from the destination through oras-go's
// verifying reader: its size and digest must be desc's.
func (c *checker) blob(ctx context.Context, desc ocispec.Descriptor) error {
	if c.seen[desc.Digest] {
		return nil
	}
	if len(desc.Data) > 0 {
		// Embedded data is what readers use; it was part of the manifest
		// re-hashed.
		c.seen[desc.Digest] = true
		return nil
	}
	rc, err := c.dst.Fetch(ctx, desc)
	if err != nil {
		if errors.Is(err, orasdef.ErrNotFound) {
			return &ociwf.ContentError{Descriptor: desc, Problem: "is missing from the destination", Expected: desc.Digest.String(), Actual: "not found", Err: err}
		}
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	vr := content.NewVerifyReader(rc, desc)
	if _, err := io.Copy(io.Discard, vr); err != nil {
		return fmt.Errorf("blob %s: %w: %w", desc.Digest, err, errdef.ErrVerification)
	}
	if err := vr.Verify(); err != nil {
		return fmt.Errorf("blob %s: %w: %w", desc.Digest, err, errdef.ErrVerification)
	}
	c.seen[desc.Digest] = true
	return nil
}

// count adds the accessories m holds to res, by layer.
func count(res *Result, m *ocispec.Manifest) {
	for _, l := range m.Layers {
		var predicate string
		switch {
		case l.MediaType == simpleSigningMediaType:
			res.Accessories["signature"]++
		case l.MediaType == dsseMediaType:
			res.Accessories["attestation"]++
			predicate = l.Annotations[predicateTypeAnnotation]
		case len(l.MediaType) >= len(bundleMediaTypePrefix) && l.MediaType[:len(bundleMediaTypePrefix)] == bundleMediaTypePrefix:
			res.Accessories["bundle"]++
			predicate = m.Annotations[bundlePredicateAnnotation]
		case isSBOM(l.MediaType):
			res.Accessories["sbom"]++
		default:
			res.Accessories["other"]++
		}
		switch predicate {
		case lifecycle.EventPredicateType:
			res.LifecycleEvents++
		case lifecycle.ApprovalPredicateType:
			res.Approvals++
		}
	}
}

// isSBOM reports whether mediaType is one of the documents cosign stores
// under the .sbom tag.
func isSBOM(mediaType string) bool {
	switch mediaType {
	case "text/spdx", "text/spdx+json", "application/vnd.cyclonedx+json", "application/vnd.cyclonedx+xml", "application/vnd.syft+json":
		return true
	}
	return false
}
