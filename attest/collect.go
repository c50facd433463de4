package attest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/ociwf/errdef"
)

// kind is what collect gathers: signatures or attestations.
type kind struct {
	suffix    string                                                      // cosign tag suffix
	tag       func(name.Reference, ...ociremote.Option) (name.Tag, error) // cosign's tag for it
	layer     string                                                      // media type of the layers that hold them
	artifacts []string                                                    // artifact types of referrers that may hold them
}

var (
	sigKind = kind{suffix: ".sig", tag: ociremote.SignatureTag, layer: types.SimpleSigningMediaType, artifacts: []string{sigArtifactType}}
	// Cosign writes attestation referrers with an empty config and the
	// in-toto artifact type; registries without the referrers API list them
	// through the fallback tag by their config media type.
	attKind = kind{suffix: ".att", tag: ociremote.AttestationTag, layer: types.DssePayloadType, artifacts: []string{attArtifactType, ocispec.MediaTypeEmptyJSON}}
)

// Artifact types of referrers that hold signatures and attestations, as
// cosign writes them.
const (
	sigArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	attArtifactType = "application/vnd.in-toto+json"
)

// where selects the storage schemes to read.
type where struct{ tags, referrers bool }

// writeScheme is where r writes: reads for duplicate detection look only
// there, because that is where a write would land.
func (r *Registry) writeScheme() where {
	if r.mode == Referrers {
		return where{referrers: true}
	}
	return where{tags: true}
}

// collect gathers the stored signatures or attestations of d, one list
// per kind asked for, from the chosen schemes: each kind's cosign tag, and
// one listing of the referrers for all kinds. Referrers are recognised by
// their layers' media type, not only by the artifact type a registry
// reports for them.
func (r *Registry) collect(ctx context.Context, d name.Digest, ropts []ociremote.Option, w where, kinds ...kind) ([][]oci.Signature, error) {
	out, err := r.collectFrom(ctx, d, ropts, w, kinds...)
	return out, r.settle(err)
}

func (r *Registry) collectFrom(ctx context.Context, d name.Digest, ropts []ociremote.Option, w where, kinds ...kind) ([][]oci.Signature, error) {
	out := make([][]oci.Signature, len(kinds))
	var g errgroup.Group
	if w.tags {
		for i, k := range kinds {
			g.Go(func() error {
				tag, err := k.tag(d, ropts...)
				if err != nil {
					return err
				}
				got, err := load(tag, ropts, func(oci.Signature) bool { return true }, static.Copy)
				out[i] = append(out[i], got...)
				return err
			})
		}
		if err := g.Wait(); err != nil {
			return nil, err
		}
	}
	if !w.referrers {
		return out, nil
	}
	idx, err := ociremote.Referrers(d, "", ropts...)
	if err != nil && !notFound(err) {
		return nil, fmt.Errorf("list referrers of %s: %w", d, err)
	}
	if idx == nil {
		return out, nil
	}
	if len(idx.Manifests) > MaxReferrers {
		return nil, fmt.Errorf("%s has %d referrers, over the %d read: %w", d, len(idx.Manifests), MaxReferrers, errdef.ErrTooLarge)
	}
	found := make([][][]oci.Signature, len(kinds)) // per kind, per referrer
	g.SetLimit(8)
	for i, k := range kinds {
		found[i] = make([][]oci.Signature, len(idx.Manifests))
		keep := func(s oci.Signature) bool {
			mt, err := s.MediaType()
			return err == nil && string(mt) == k.layer
		}
		cp := static.Copy
		if k.suffix == attKind.suffix {
			// Referrer manifests drop layer annotations, and cosign's
			// verifier wants the (empty) signature annotation of
			// attestation layers; the signature itself is inside the DSSE
			// envelope.
			cp = reattest
		}
		for j, m := range idx.Manifests {
			if !slices.Contains(k.artifacts, m.ArtifactType) {
				continue
			}
			g.Go(func() (err error) {
				found[i][j], err = load(d.Repository.Digest(m.Digest.String()), ropts, keep, cp)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range kinds {
		out[i] = slices.Concat(append([][]oci.Signature{out[i]}, found[i]...)...)
	}
	return out, ctx.Err()
}

// load reads the signature layers of one manifest; a missing manifest has
// none. Layers are fetched once, concurrently, and kept in memory (remote
// layers would otherwise be downloaded again on every look at them): keep
// selects the layers wanted, and copy makes the in-memory copy.
func load(ref name.Reference, ropts []ociremote.Option, keep func(oci.Signature) bool, copy func(oci.Signature) (oci.Signature, error)) ([]oci.Signature, error) {
	sigs, err := ociremote.Signatures(ref, ropts...)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	got, err := sigs.Get()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	got = slices.DeleteFunc(got, func(s oci.Signature) bool { return !keep(s) })
	if len(got) > MaxSignatures {
		return nil, fmt.Errorf("read %s: %d signatures or attestations, over the %d read: %w", ref, len(got), MaxSignatures, errdef.ErrTooLarge)
	}
	out := make([]oci.Signature, len(got))
	var g errgroup.Group
	g.SetLimit(8)
	for i, s := range got {
		g.Go(func() error {
			c, err := copy(s)
			if err != nil {
				return fmt.Errorf("read %s: %w", ref, err)
			}
			out[i] = c
			return nil
		})
	}
	return out, g.Wait()
}

// reattest rebuilds an attestation layer read from a referrer.
func reattest(s oci.Signature) (oci.Signature, error) {
	payload, err := s.Payload()
	if err != nil {
		return nil, fmt.Errorf("read attestation: %w", err)
	}
	return static.NewAttestation(payload, static.WithLayerMediaType(types.DssePayloadType))
}

// asSignatures wraps sigs for cosign functions that take oci.Signatures.
func asSignatures(sigs []oci.Signature) (oci.Signatures, error) {
	return mutate.AppendSignatures(empty.Signatures(), false, sigs...)
}

func notFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// bare is an entity with no signatures or attestations yet, for writes that
// must carry only the new one (referrers).
func bare(d name.Digest) oci.SignedEntity {
	se, _ := empty.SignedImage(d) // cannot fail: d is a valid digest reference
	return se
}
