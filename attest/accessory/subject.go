package accessory

import (
	"context"
	"fmt"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// Subject is the artifact that signatures and attestations are about.
type Subject struct {
	// Repository is "registry/repository".
	Repository string
	// Digest is the manifest digest; signatures always name it.
	Digest digest.Digest
	// Tag, when the artifact was addressed by a tag, is recorded as the
	// signed AnnotationTag so that a moved tag is detectable later.
	Tag string
}

// String returns REPOSITORY@DIGEST.
func (s Subject) String() string { return s.Repository + "@" + s.Digest.String() }

// AnnotationTag is the signed annotation that records the tag a workflow
// was published under.
const AnnotationTag = "dev.ociwf.tag"

// NewSubject returns the subject for the manifest dgst reached through
// ref: its repository, and its tag unless ref names a digest.
func NewSubject(ref target.Ref, dgst digest.Digest) Subject {
	s := Subject{Repository: ref.Name, Digest: dgst}
	if !ref.IsDigest() {
		s.Tag = ref.Reference
	}
	return s
}

// ResolveSubject resolves ref's tag or digest once in store (ref's
// repository) and returns the subject that signatures about it name, with
// the descriptor the registry answered. A reference naming neither a tag
// nor a digest is an error matching errdef.ErrInvalidReference; a digest
// the registry answers with another manifest is an error matching
// errdef.ErrVerification, returned with that manifest's descriptor.
func ResolveSubject(ctx context.Context, store content.Resolver, ref target.Ref) (Subject, ocispec.Descriptor, error) {
	if ref.Reference == "" {
		return Subject{}, ocispec.Descriptor{}, fmt.Errorf("%s names no artifact: add :TAG or @DIGEST: %w", ref.Name, errdef.ErrInvalidReference)
	}
	desc, err := store.Resolve(ctx, ref.Reference)
	if err != nil {
		return Subject{}, ocispec.Descriptor{}, fmt.Errorf("resolve %s: %w", refString(ref), err)
	}
	if ref.IsDigest() && desc.Digest.String() != ref.Reference {
		return Subject{}, desc, fmt.Errorf("resolve %s: the registry answered with manifest %s: %w", refString(ref), desc.Digest, errdef.ErrVerification)
	}
	return NewSubject(ref, desc.Digest), desc, nil
}

// refString is ref as it was written: NAME:TAG or NAME@DIGEST.
func refString(ref target.Ref) string {
	if ref.IsDigest() {
		return ref.Name + "@" + ref.Reference
	}
	return ref.Name + ":" + ref.Reference
}
