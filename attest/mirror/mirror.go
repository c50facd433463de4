// Package mirror copies workflow versions between registries, OCI image
// layouts and tar archives of layouts, with everything attached to them:
// the manifest and its blobs, cosign's tag-scheme accessories
// (sha256-<hex>.sig, .att and .sbom: signatures, attestations, lifecycle
// events and approvals, SBOMs) and the OCI 1.1 referrers (signatures,
// attestations and sigstore bundles stored as referrers, and their own
// referrers), so that the copy verifies as the original does.
//
// Copying is idempotent and resumable: content the destination holds is
// skipped, and an interrupted copy is finished by running it again. It
// never removes anything from the destination: when a cosign tag there
// already holds other entries (a mirror that was signed again, or the
// ociwf registry's append-only accessory tags), the copy merges, keeping
// the entries there in their order and adding the missing ones after them.
// The version tag is applied last and write-once (ociwf.TagOnce). After
// copying, Copy re-reads everything it wrote from the destination,
// re-hashing every manifest and blob, and checks that every accessory of
// the source is there.
//
// It lives in package attest because what it preserves is the attestation
// material; it copies through oras-go and needs no signing key.
package mirror

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
)

// Limits on what a copy reads about one version, so that a hostile source
// cannot make it walk without end.
const (
	// MaxReferrers bounds the referrers of one version copied, counting
	// referrers of referrers.
	MaxReferrers = 1000
	// MaxReferrerDepth bounds how deep referrers of referrers are
	// followed.
	MaxReferrerDepth = 4
	// MaxVersions bounds the version tags CopyAll reads from a source.
	MaxVersions = 10000
	// MaxBlobBytes bounds each manifest and blob a copy reads: the largest
	// part of a workflow version (ociwf.MaxPlanBytes, ociwf.MaxSBOMBytes)
	// or of a signature or attestation is smaller.
	MaxBlobBytes = 64 << 20
)

// TagSuffixes are the cosign tag-scheme accessories copied with a
// version: sha256-<hex> followed by one of them.
var tagSuffixes = []string{".sig", ".att", ".sbom"}

// Options tune Copy.
type Options struct {
	// Tag is the version tag to apply at the destination, write-once; empty
	// applies none (the version is reachable by its digest).
	Tag string
	// Concurrency bounds the blobs copied at once for one version
	// (default 3, oras-go's).
	Concurrency int
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Result says what one Copy did.
type Result struct {
	// Source is the reference copied, Digest the version's digest and Tag
	// the tag applied at the destination.
	Source string        `json:"source"`
	Digest digest.Digest `json:"digest"`
	Tag    string        `json:"tag,omitempty"`
	// Manifests and Blobs count what was written to the destination,
	// Bytes their size; Skipped counts what it already held.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	Skipped   int   `json:"skipped"`
	// Merged lists the cosign tags whose destination manifest already held
	// other entries and was extended with the source's.
	Merged []string `json:"merged,omitempty"`
	// Accessories counts what the destination holds for the version after
	// the copy, by kind: signature, attestation, sbom, bundle, other.
	Accessories map[string]int `json:"accessories"`
	// LifecycleEvents and Approvals count the lifecycle statements among
	// the attestations and bundles.
	LifecycleEvents int `json:"lifecycleEvents"`
	Approvals       int `json:"approvals"`
	// Referrers and Tags are the accessories found at the source: the
	// referrer manifests and the cosign tags.
	Referrers []ocispec.Descriptor          `json:"-"`
	Tags      map[string]ocispec.Descriptor `json:"-"`

	mu sync.Mutex
}

// MissingError reports accessories of the source that the destination
// lacks after a copy. It matches errdef.ErrVerification.
type MissingError struct {
	// Missing names each: "referrer sha256:... (artifact type ...)",
	// "tag sha256-<hex>.att entry sha256:...".
	Missing []string
}

// Error names every missing accessory.
func (e *MissingError) Error() string {
	return fmt.Sprintf("the copy is incomplete: the destination lacks %s; run the copy again, and if it stays missing the destination refuses or drops it", strings.Join(e.Missing, "; "))
}

// Is reports whether target is errdef.ErrVerification.
func (e *MissingError) Is(target error) bool { return target == errdef.ErrVerification }

// Copy copies the version ref names in src (a tag or a digest) to dst
// with every accessory, tags it opts.Tag write-once, and checks the
// destination (Check). A tag at dst naming another digest is an
// *ociwf.ImmutableError (errdef.ErrImmutable), found before anything is
// written; content missing at the source names what was missing; an
// incomplete destination is a *MissingError; content that re-hashes to
// another digest at dst is an *ociwf.ContentError.
func Copy(ctx context.Context, src oras.ReadOnlyGraphTarget, ref string, dst oras.GraphTarget, opts Options) (*Result, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	desc, err := src.Resolve(ctx, ref)
	if err != nil {
		return nil, fmt.Errorf("resolve %s at the source: %w", ref, err)
	}
	if !isManifest(desc.MediaType) {
		return nil, fmt.Errorf("%s is a %s, not a manifest: %w", ref, desc.MediaType, errdef.ErrNotWorkflow)
	}
	if opts.Tag != "" {
		if err := ociwf.ValidateTag(opts.Tag); err != nil {
			return nil, err
		}
		if _, err := ociwf.CheckTag(ctx, dst, desc, opts.Tag); err != nil {
			return nil, err
		}
	}
	res := &Result{Source: ref, Digest: desc.Digest, Tag: opts.Tag, Tags: map[string]ocispec.Descriptor{}}
	gopts := res.graphOptions(opts.Concurrency)

	if err := oras.CopyGraph(ctx, src, dst, desc, gopts); err != nil {
		return res, fmt.Errorf("copy %s (%s): %w", ref, desc.Digest, err)
	}
	log.DebugContext(ctx, "copied version", "digest", desc.Digest)

	if res.Referrers, err = Referrers(ctx, src, desc); err != nil {
		return res, fmt.Errorf("list the referrers of %s at the source: %w", desc.Digest, err)
	}
	for _, r := range res.Referrers {
		if err := oras.CopyGraph(ctx, src, dst, r, gopts); err != nil {
			return res, fmt.Errorf("copy referrer %s (%s) of %s: %w", r.Digest, describe(r), desc.Digest, err)
		}
	}

	for _, suffix := range tagSuffixes {
		tag := accessoryTag(desc.Digest, suffix)
		td, err := src.Resolve(ctx, tag)
		switch {
		case errors.Is(err, orasdef.ErrNotFound):
			continue
		case err != nil:
			return res, fmt.Errorf("resolve %s at the source: %w", tag, err)
		}
		res.Tags[tag] = td
		if err := oras.CopyGraph(ctx, src, dst, td, gopts); err != nil {
			return res, fmt.Errorf("copy %s (%s): %w", tag, td.Digest, err)
		}
		merged, err := res.tagAccessory(ctx, src, dst, td, tag)
		if err != nil {
			return res, fmt.Errorf("tag %s at the destination: %w", tag, err)
		}
		if merged {
			res.Merged = append(res.Merged, tag)
		}
	}

	if opts.Tag != "" {
		if err := ociwf.TagOnce(ctx, dst, dst, desc, opts.Tag); err != nil {
			return res, err
		}
	}
	if err := Check(ctx, dst, desc, res); err != nil {
		return res, err
	}
	return res, nil
}

// graphOptions counts what oras-go writes and skips into r.
func (r *Result) graphOptions(concurrency int) oras.CopyGraphOptions {
	return oras.CopyGraphOptions{
		Concurrency:      concurrency,
		MaxMetadataBytes: ociwf.MaxManifestBytes,
		PreCopy: func(_ context.Context, d ocispec.Descriptor) error {
			if d.Size < 0 || d.Size > MaxBlobBytes {
				return fmt.Errorf("%s (%s) is %d bytes, over the %d byte limit of what a copy reads: %w", d.Digest, describe(d), d.Size, MaxBlobBytes, errdef.ErrTooLarge)
			}
			return nil
		},
		PostCopy: func(_ context.Context, d ocispec.Descriptor) error {
			r.wrote(d)
			return nil
		},
		OnCopySkipped: func(context.Context, ocispec.Descriptor) error {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.Skipped++
			return nil
		},
	}
}

// wrote counts d as written.
func (r *Result) wrote(d ocispec.Descriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if isManifest(d.MediaType) {
		r.Manifests++
	} else {
		r.Blobs++
	}
	r.Bytes += d.Size
}

// Referrers lists the referrers of desc in src, and theirs, breadth
// first, each once: through the OCI 1.1 referrers API of a registry (or
// its fallback tag sha256-<hex> on a registry without it), or an OCI
// layout's index. At most MaxReferrers are listed, MaxReferrerDepth deep;
// more is an error matching errdef.ErrTooLarge.
func Referrers(ctx context.Context, src oras.ReadOnlyGraphTarget, desc ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	seen := map[digest.Digest]bool{desc.Digest: true}
	var out []ocispec.Descriptor
	level := []ocispec.Descriptor{desc}
	for depth := 0; len(level) > 0; depth++ {
		var next []ocispec.Descriptor
		for _, d := range level {
			rs, err := listReferrers(ctx, src, d)
			if err != nil {
				return nil, fmt.Errorf("referrers of %s: %w", d.Digest, err)
			}
			for _, r := range rs {
				if seen[r.Digest] {
					continue
				}
				if depth >= MaxReferrerDepth || len(out) >= MaxReferrers {
					return nil, fmt.Errorf("referrers of %s: more than %d, or nested more than %d deep: %w", desc.Digest, MaxReferrers, MaxReferrerDepth, errdef.ErrTooLarge)
				}
				seen[r.Digest] = true
				out = append(out, r)
				next = append(next, r)
			}
		}
		level = next
	}
	return out, nil
}

// listReferrers lists the referrers of d in src, failing with
// errdef.ErrTooLarge as soon as the listing holds more than MaxReferrers
// entries (a registry's listing is read page by page, so a hostile one
// cannot make it hold more) or runs over target.MaxListPages pages.
func listReferrers(ctx context.Context, src oras.ReadOnlyGraphTarget, d ocispec.Descriptor) ([]ocispec.Descriptor, error) {
	tooMany := fmt.Errorf("the listing has more than %d entries: %w", MaxReferrers, errdef.ErrTooLarge)
	rl, ok := src.(registry.ReferrerLister)
	if !ok {
		rs, err := registry.Referrers(ctx, src, d, "")
		if err == nil && len(rs) > MaxReferrers {
			return nil, tooMany
		}
		return rs, err
	}
	var out []ocispec.Descriptor
	err := rl.Referrers(ctx, d, "", func(page []ocispec.Descriptor) error {
		if len(out)+len(page) > MaxReferrers {
			return tooMany
		}
		out = append(out, page...)
		return nil
	})
	if err != nil {
		return nil, target.ListingError(err)
	}
	return out, nil
}

// accessoryTag is cosign's tag for the accessories of dgst: sha256-<hex>
// and suffix.
func accessoryTag(dgst digest.Digest, suffix string) string {
	return dgst.Algorithm().String() + "-" + dgst.Encoded() + suffix
}

// isManifest reports whether mediaType is a manifest or an index.
func isManifest(mediaType string) bool {
	switch mediaType {
	case ocispec.MediaTypeImageManifest, ocispec.MediaTypeImageIndex,
		"application/vnd.docker.distribution.manifest.v2+json", "application/vnd.docker.distribution.manifest.list.v2+json":
		return true
	}
	return false
}

// describe names what a referrer descriptor says it is.
func describe(d ocispec.Descriptor) string {
	if d.ArtifactType != "" {
		return "artifact type " + d.ArtifactType
	}
	return "media type " + d.MediaType
}

// IsVersionTag reports whether tag can name a version: not one of the
// accessory tags cosign and the referrers fallback reserve.
func IsVersionTag(tag string) bool { return !immutability.IsAccessoryTag(tag) }
