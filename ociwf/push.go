package ociwf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/content/memory"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
)

// PushOptions tune Push. The zero value is valid.
type PushOptions struct {
	PackOptions
	// Concurrency bounds parallel blob uploads; zero means oras-go's default.
	Concurrency int
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// BeforeTag, if set, runs after the artifact is stored by digest and
	// before the tag is applied; an error leaves the tag untouched. Publish
	// ceremonies sign and attest here, so a tag never names an artifact
	// whose signature or attestations are missing. The second write-once
	// check of the tag runs while BeforeTag does.
	BeforeTag func(ctx context.Context, desc ocispec.Descriptor) error
	// Draft, if set, says the tag is a mutable draft tag: Push then moves
	// it when it names another digest instead of refusing. Set it only
	// for tags the immutability rules leave mutable (DraftTag checks).
	Draft bool
}

// DraftTag refuses a draft push to a tag that rules (the registry's
// immutability rules; nil means immutability.Default()) protect in
// repository repo (its name without the registry host): only mutable
// tags may be moved. The error matches errdef.ErrImmutable.
func DraftTag(rules *immutability.Rules, repo, tag string) error {
	if rules == nil {
		rules = immutability.Default()
	}
	if mode, rule := rules.Match(repo, tag); mode != immutability.Mutable {
		name := "accessory tags"
		if rule != nil {
			name = rule.Name
		}
		return fmt.Errorf("tag %q of %s is %s under rule %q, so it cannot be a draft tag: push drafts to a mutable tag (for example draft or main) or by digest: %w", tag, repo, mode, name, errdef.ErrImmutable)
	}
	return nil
}

// Push packs b and publishes it to dst: every blob, then the manifest, by
// digest; the tag is applied last with TagOnce, so a failure never leaves the
// tag pointing at a half-published artifact and an existing tag is never
// moved. An empty tag publishes by digest only; any other tag must pass
// ValidateTag. Every blob and the manifest are checked against their size
// limits before anything is written. It returns the manifest descriptor.
func Push(ctx context.Context, dst oras.Target, b *Build, tag string, opts PushOptions) (ocispec.Descriptor, error) {
	if tag != "" {
		if err := ValidateTag(tag); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	mem := memory.New()
	desc, err := Pack(ctx, mem, b, opts.PackOptions)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	// Refuse early, before uploading anything, when the tag is taken by
	// another digest; TagOnce checks again at the end. A draft tag moves.
	moved := func(err error) bool {
		var ie *ImmutableError
		return opts.Draft && errors.As(err, &ie)
	}
	if tag != "" {
		if _, err := CheckTag(ctx, dst, desc, tag); err != nil && !moved(err) {
			return ocispec.Descriptor{}, err
		}
	}
	cg := oras.DefaultCopyGraphOptions
	// Pack checked the manifest against MaxManifestBytes; oras-go's own
	// limit on the manifests it reads while copying is the same one.
	cg.MaxMetadataBytes = MaxManifestBytes
	if opts.Concurrency > 0 {
		cg.Concurrency = opts.Concurrency
	}
	cg.OnCopySkipped = func(_ context.Context, d ocispec.Descriptor) error {
		log.Debug("exists", "digest", d.Digest, "mediaType", d.MediaType)
		return nil
	}
	cg.PostCopy = func(_ context.Context, d ocispec.Descriptor) error {
		log.Debug("uploaded", "digest", d.Digest, "mediaType", d.MediaType, "size", d.Size)
		return nil
	}
	if err := oras.CopyGraph(ctx, mem, dst, desc, cg); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("push %s: %w", desc.Digest, err)
	}
	// The second write-once check runs while BeforeTag does (signing is
	// slow), so the tag write follows it without another round trip.
	var exists bool
	var g errgroup.Group
	if tag != "" {
		g.Go(func() (err error) {
			exists, err = CheckTag(ctx, dst, desc, tag)
			if moved(err) {
				return nil
			}
			return err
		})
	}
	var herr error
	if opts.BeforeTag != nil {
		herr = opts.BeforeTag(ctx, desc)
	}
	if err := errors.Join(herr, g.Wait()); err != nil {
		return ocispec.Descriptor{}, err
	}
	if tag == "" {
		return desc, nil
	}
	if !exists {
		if err := putTag(ctx, dst, mem, desc, tag); err != nil {
			return ocispec.Descriptor{}, err
		}
	}
	log.Debug("tagged", "tag", tag, "digest", desc.Digest)
	return desc, nil
}

// ValidateTag checks a workflow version tag: it must be a valid OCI tag and
// not one of the names cosign and the OCI referrers fallback reserve for a
// digest's accessories (sha256-<hex>, sha256-<hex>.sig, .att, .sbom), which
// a version tag would take before the digest is signed. Failures match
// errdef.ErrInvalidReference.
func ValidateTag(tag string) error {
	if err := (registry.Reference{Reference: tag}).ValidateReferenceAsTag(); err != nil {
		return fmt.Errorf("version tag %q: %v: %w", tag, err, errdef.ErrInvalidReference)
	}
	if immutability.IsAccessoryTag(tag) {
		return fmt.Errorf("version tag %q: reserved for a digest's signatures, attestations and SBOMs; choose another tag: %w", tag, errdef.ErrInvalidReference)
	}
	return nil
}

// ImmutableError reports an attempt to move a write-once tag. It matches
// errdef.ErrImmutable with errors.Is.
type ImmutableError struct {
	Tag      string
	Current  ocispec.Descriptor // what the tag names now
	Attempts ocispec.Descriptor // what the caller tried to tag
}

// Error names both digests and what to do instead.
func (e *ImmutableError) Error() string {
	return fmt.Sprintf("tag %q already names %s; refusing to move it to %s (tags are write-once: publish a new version instead)", e.Tag, e.Current.Digest, e.Attempts.Digest)
}

// Is reports whether target is errdef.ErrImmutable.
func (e *ImmutableError) Is(target error) bool { return target == errdef.ErrImmutable }

// checkTag reports whether tag already names desc, and returns an
// *ImmutableError if it names another digest.
func CheckTag(ctx context.Context, dst oras.ReadOnlyTarget, desc ocispec.Descriptor, tag string) (bool, error) {
	cur, err := dst.Resolve(ctx, tag)
	switch {
	case err == nil && cur.Digest == desc.Digest:
		return true, nil
	case err == nil:
		return false, &ImmutableError{Tag: tag, Current: cur, Attempts: desc}
	case errors.Is(err, orasdef.ErrNotFound):
		return false, nil
	default:
		return false, fmt.Errorf("resolve tag %q: %w", tag, err)
	}
}

// TagOnce applies tag to desc on dst with write-once semantics: if tag
// already names desc it succeeds without writing; if it names another digest
// it fails with an *ImmutableError and leaves the tag as it is. tag must
// pass ValidateTag. src holds the
// manifest bytes, read through FetchAll (verified, at most
// MaxManifestBytes), so registries get a single manifest PUT by tag.
//
// On registries without server-side immutability a race remains between the
// check and the write: two clients tagging different digests at the same
// moment can both pass the check, and the last write wins. Only a registry
// that enforces immutable tags itself closes that window; see
// docs/artifact-format.md.
func TagOnce(ctx context.Context, dst oras.Target, src content.Fetcher, desc ocispec.Descriptor, tag string) error {
	if err := ValidateTag(tag); err != nil {
		return err
	}
	exists, err := CheckTag(ctx, dst, desc, tag)
	if err != nil || exists {
		return err
	}
	return putTag(ctx, dst, src, desc, tag)
}

// putTag writes tag for desc, with a single manifest PUT on registries.
func putTag(ctx context.Context, dst oras.Target, src content.Fetcher, desc ocispec.Descriptor, tag string) error {
	rp, ok := dst.(registry.ReferencePusher)
	if !ok {
		if err := dst.Tag(ctx, desc, tag); err != nil {
			return fmt.Errorf("tag %q: %w", tag, err)
		}
		return nil
	}
	raw, err := FetchAll(ctx, src, desc, MaxManifestBytes)
	if err != nil {
		return fmt.Errorf("tag %q: read manifest: %w", tag, err)
	}
	if err := rp.PushReference(ctx, desc, bytes.NewReader(raw), tag); err != nil {
		// Refused, or the answer lost: another client may have taken the
		// tag since CheckTag (a registry that enforces immutability
		// refuses the write), or this write may have landed.
		if exists, cerr := CheckTag(ctx, dst, desc, tag); cerr == nil && exists {
			return nil
		} else if ie := (*ImmutableError)(nil); errors.As(cerr, &ie) {
			return fmt.Errorf("tag %q was taken by another client meanwhile: %w", tag, cerr)
		}
		return fmt.Errorf("tag %q: %w", tag, err)
	}
	return nil
}
