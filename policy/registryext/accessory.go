package registryext

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// What cosign v2 writes to its reserved tags (pkg/types, pkg/oci/static,
// cmd/cosign/cli/attach): every layer of a .sig manifest is a simple-signing
// payload with the signature in an annotation; every layer of a .att
// manifest a DSSE envelope (cosign attest adds a predicateType annotation,
// cosign attach attestation does not); every layer of a .sbom manifest an
// SPDX, CycloneDX or Syft document.
const (
	simpleSigningMediaType = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsseMediaType          = "application/vnd.dsse.envelope.v1+json"
	signatureAnnotation    = "dev.cosignproject.cosign/signature"
)

// sbomMediaTypes are the media types of the documents cosign stores as
// SBOMs.
func sbomMediaTypes() []string {
	return []string{
		"text/spdx", "text/spdx+json",
		"application/vnd.cyclonedx+json", "application/vnd.cyclonedx+xml",
		"application/vnd.syft+json",
	}
}

// accessoryKind is what one reserved tag suffix holds.
type accessoryKind struct {
	what  string // "signatures" (of a subject)
	layer string // "a cosign signature (...)"
	ok    func(v1.Descriptor) bool
}

// accessoryKindOf returns what the reserved tag suffix (".sig", ".att",
// ".sbom") holds, with the check of a layer of it.
func accessoryKindOf(suffix string) accessoryKind {
	switch suffix {
	case ".sig":
		return accessoryKind{"signatures", "a cosign signature (media type " + simpleSigningMediaType + " with the annotation " + signatureAnnotation + ")", func(d v1.Descriptor) bool {
			return d.MediaType == simpleSigningMediaType && d.Annotations[signatureAnnotation] != ""
		}}
	case ".att":
		return accessoryKind{"attestations", "a cosign attestation (media type " + dsseMediaType + ")", func(d v1.Descriptor) bool {
			return d.MediaType == dsseMediaType
		}}
	case ".sbom":
		sbom := sbomMediaTypes()
		return accessoryKind{"SBOMs", "an SBOM (media type " + strings.Join(sbom, ", ") + ")", func(d v1.Descriptor) bool {
			return slices.Contains(sbom, d.MediaType)
		}}
	}
	return accessoryKind{}
}

// notAccessory says why man cannot be stored under tag, a name cosign and
// the referrers fallback reserve (immutability.IsAccessoryTag), or returns
// "": sha256-<hex>.sig, .att and .sbom hold a manifest whose every layer
// is a signature, attestation or SBOM; sha256-<hex> holds an image index
// of referrers of sha256:<hex>.
func (m *manifests) notAccessory(ctx context.Context, tag string, man distribution.Manifest) (string, error) {
	lower := strings.ToLower(tag)
	base, suffix := lower, ""
	if i := strings.IndexByte(lower, '.'); i >= 0 {
		base, suffix = lower[:i], lower[i:]
	}
	alg, hex, _ := strings.Cut(base, "-")
	subject := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	reserved := fmt.Sprintf("tag %s of %s is reserved for ", tag, m.r.name())
	if suffix == "" {
		return m.notFallbackIndex(ctx, reserved+"the referrers fallback index of "+subject.String(), subject, man)
	}
	kind := accessoryKindOf(suffix)
	reserved += fmt.Sprintf("cosign's %s of %s", kind.what, subject)
	layers, ok := layersOf(man)
	if !ok {
		return reserved + ": the manifest is not an image manifest", nil
	}
	if len(layers) == 0 {
		return reserved + ": the manifest holds no layers", nil
	}
	for i, l := range layers {
		if !kind.ok(l) {
			return fmt.Sprintf("%s: layer %d is not %s", reserved, i, kind.layer), nil
		}
	}
	return "", nil
}

// notFallbackIndex says why man is not a referrers fallback index of
// subject: an OCI image index whose every entry is a manifest of the
// repository with that subject.
func (m *manifests) notFallbackIndex(ctx context.Context, reserved string, subject digest.Digest, man distribution.Manifest) (string, error) {
	idx, ok := man.(*ocischema.DeserializedImageIndex)
	if !ok {
		return reserved + ": the manifest is not an image index", nil
	}
	for i, d := range idx.Manifests {
		child, err := m.ManifestService.Get(ctx, d.Digest)
		var unknownRev distribution.ErrManifestUnknownRevision
		var unknown distribution.ErrManifestUnknown
		switch {
		case errors.As(err, &unknownRev), errors.As(err, &unknown), errors.Is(err, distribution.ErrBlobUnknown):
			return fmt.Sprintf("%s: entry %d (%s) is not a manifest of the repository", reserved, i, d.Digest), nil
		case err != nil:
			return "", err
		}
		mt, payload, err := child.Payload()
		if err != nil {
			return "", err
		}
		if s, _, ok := subjectOf(mt, payload); !ok || s.Digest != subject {
			return fmt.Sprintf("%s: entry %d (%s) is not a referrer of %s", reserved, i, d.Digest, subject), nil
		}
	}
	return "", nil
}
