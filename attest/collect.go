package attest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

// haul is what one read found of one kind.
type haul struct {
	// ok are the entries that parse, copied into memory.
	ok []oci.Signature
	// all are every entry in stored order: ok's copies and the malformed
	// entries as read. A tag scheme rewrite keeps all, so an entry ociwf
	// cannot parse is neither dropped nor fatal.
	all []oci.Signature
	// malformed describes the entries that do not parse.
	malformed []Malformed
}

func (h *haul) add(o haul) {
	h.ok = append(h.ok, o.ok...)
	h.all = append(h.all, o.all...)
	h.malformed = append(h.malformed, o.malformed...)
}

// Malformed is a stored entry that does not parse as a cosign signature or
// attestation, such as a layer without cosign's signature annotation that
// anyone with push access can append to a version's .sig manifest. It is
// skipped: it counts for nothing, and does not keep the valid entries from
// counting.
type Malformed struct {
	// Mode is where it was found.
	Mode Mode `json:"mode"`
	// Kind is "signature" or "attestation".
	Kind string `json:"kind"`
	// Manifest is the manifest holding it: a cosign tag or a referrer.
	Manifest string `json:"manifest"`
	// Layer is the layer's digest; empty when the manifest, a referrer
	// of a signature or attestation artifact type, holds no layer of
	// that kind at all.
	Layer string `json:"layer,omitempty"`
	// Reason says what is wrong with it.
	Reason string `json:"reason"`
}

// String describes the entry in one line.
func (m Malformed) String() string {
	at := m.Manifest
	if m.Layer != "" {
		at = "layer " + m.Layer + " of " + m.Manifest
	}
	return fmt.Sprintf("malformed %s %s (%s) skipped: %s", m.Mode, m.Kind, at, m.Reason)
}

// collect gathers the stored signatures or attestations of d, one haul
// per kind asked for, from the chosen schemes: each kind's cosign tag, and
// one listing of the referrers for all kinds. Referrers are recognised by
// their layers' media type, not only by the artifact type a registry
// reports for them. Entries that do not parse are skipped, logged and
// listed in the haul's malformed.
func (r *Registry) collect(ctx context.Context, d name.Digest, ropts []ociremote.Option, w where, kinds ...kind) ([]haul, error) {
	out, err := r.collectFrom(ctx, d, ropts, w, kinds...)
	if err != nil {
		return nil, r.settle(err)
	}
	for _, h := range out {
		for _, m := range h.malformed {
			r.log.WarnContext(ctx, "malformed entry skipped", "subject", d.String(), "mode", m.Mode.String(), "kind", m.Kind, "manifest", m.Manifest, "layer", m.Layer, "reason", m.Reason)
		}
	}
	return out, nil
}

func (r *Registry) collectFrom(ctx context.Context, d name.Digest, ropts []ociremote.Option, w where, kinds ...kind) ([]haul, error) {
	out := make([]haul, len(kinds))
	var g errgroup.Group
	if w.tags {
		for i, k := range kinds {
			g.Go(func() error {
				tag, err := k.tag(d, ropts...)
				if err != nil {
					return err
				}
				got, err := load(tag, TagScheme, k, ropts, func(oci.Signature) bool { return true }, static.Copy)
				out[i].add(got)
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
	found := make([][]haul, len(kinds)) // per kind, per referrer
	g.SetLimit(8)
	for i, k := range kinds {
		found[i] = make([]haul, len(idx.Manifests))
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
			ref := d.Repository.Digest(m.Digest.String())
			if m.MediaType.IsIndex() {
				found[i][j].malformed = []Malformed{{Mode: Referrers, Kind: k.name(), Manifest: ref.String(),
					Reason: fmt.Sprintf("a referrer of media type %s, not an image manifest", m.MediaType)}}
				continue
			}
			g.Go(func() error {
				h, err := load(ref, Referrers, k, ropts, keep, cp)
				if err == nil && len(h.all) == 0 && m.ArtifactType == k.artifacts[0] {
					// Of the artifact type cosign gives its own, yet
					// holding nothing cosign could have written.
					h.malformed = append(h.malformed, Malformed{Mode: Referrers, Kind: k.name(), Manifest: ref.String(),
						Reason: fmt.Sprintf("a referrer of artifact type %s with no %s layer", m.ArtifactType, k.layer)})
				}
				found[i][j] = h
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	for i := range kinds {
		for _, h := range found[i] {
			out[i].add(h)
		}
	}
	return out, ctx.Err()
}

// name is "signature" or "attestation".
func (k kind) name() string {
	if k.suffix == attKind.suffix {
		return "attestation"
	}
	return "signature"
}

// load reads the signature layers of one manifest, found in mode m; a
// missing manifest has none. Layers are fetched once, concurrently, and
// kept in memory (remote layers would otherwise be downloaded again on
// every look at them): keep selects the layers wanted, and copy makes the
// in-memory copy. A layer whose descriptor does not parse as cosign's is
// malformed: it is not fetched, and is returned as read. Failures to read
// fail the load.
func load(ref name.Reference, m Mode, k kind, ropts []ociremote.Option, keep func(oci.Signature) bool, copy func(oci.Signature) (oci.Signature, error)) (haul, error) {
	sigs, err := ociremote.Signatures(ref, ropts...)
	var got []oci.Signature
	if err == nil {
		got, err = sigs.Get()
	}
	if err != nil {
		if readError(err) {
			return haul{}, fmt.Errorf("read %s: %w", ref, err)
		}
		// The manifest itself is not one cosign writes (an index, say).
		return haul{malformed: []Malformed{{Mode: m, Kind: k.name(), Manifest: ref.String(), Reason: err.Error()}}}, nil
	}
	got = slices.DeleteFunc(got, func(s oci.Signature) bool { return !keep(s) })
	if len(got) > MaxSignatures {
		return haul{}, fmt.Errorf("read %s: %d signatures or attestations, over the %d read: %w", ref, len(got), MaxSignatures, errdef.ErrTooLarge)
	}
	// reattest reads only the payload: referrer attestations carry no
	// cosign annotations to check.
	annotated := k.suffix == sigKind.suffix || m == TagScheme
	all := make([]oci.Signature, len(got))
	bad := make([]*Malformed, len(got))
	var g errgroup.Group
	g.SetLimit(8)
	for i, s := range got {
		if why := malformed(s, annotated); why != "" {
			all[i] = s
			bad[i] = &Malformed{Mode: m, Kind: k.name(), Manifest: ref.String(), Layer: layerDigest(s), Reason: why}
			continue
		}
		g.Go(func() error {
			c, err := copy(s)
			if err != nil {
				return fmt.Errorf("read %s: %w", ref, err)
			}
			all[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return haul{}, err
	}
	h := haul{all: all}
	for i, s := range all {
		if bad[i] != nil {
			h.malformed = append(h.malformed, *bad[i])
			continue
		}
		h.ok = append(h.ok, s)
	}
	return h, nil
}

// malformed says why the descriptor of a stored layer is not one cosign
// writes, or returns "". It reads nothing from the registry: a layer's
// annotations and size are in its manifest. With annotated, the layer must
// carry cosign's signature annotation, and any certificate, chain, bundle
// or timestamp annotation must parse.
func malformed(s oci.Signature, annotated bool) string {
	if size, err := s.Size(); err != nil {
		return err.Error()
	} else if size > MaxAccessoryBytes {
		return fmt.Sprintf("a layer of %d bytes, over the %d byte limit for signatures and attestations", size, MaxAccessoryBytes)
	}
	if !annotated {
		return ""
	}
	if _, err := s.Base64Signature(); err != nil {
		return err.Error()
	}
	if _, err := s.Cert(); err != nil {
		return fmt.Sprintf("certificate annotation: %v", err)
	}
	if _, err := s.Chain(); err != nil {
		return fmt.Sprintf("chain annotation: %v", err)
	}
	if _, err := s.Bundle(); err != nil {
		return fmt.Sprintf("bundle annotation: %v", err)
	}
	if _, err := s.RFC3161Timestamp(); err != nil {
		return fmt.Sprintf("timestamp annotation: %v", err)
	}
	return ""
}

// layerDigest is s's layer digest, or "" when it has none.
func layerDigest(s oci.Signature) string {
	d, err := s.Digest()
	if err != nil {
		return ""
	}
	return d.String()
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

// readError reports a failure to read from the registry (refused,
// unreachable, cut short, cancelled, over a limit), as opposed to content
// that was read and does not parse.
func readError(err error) bool {
	var te *transport.Error
	var ne net.Error
	return errors.As(err, &te) || errors.As(err, &ne) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errdef.ErrTooLarge) || errors.Is(err, io.ErrUnexpectedEOF)
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
