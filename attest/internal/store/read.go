package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/ociwf/errdef"
)

// Kind is what Read gathers: signatures or attestations.
type Kind struct {
	suffix    string                                                      // cosign tag suffix
	tag       func(name.Reference, ...ociremote.Option) (name.Tag, error) // cosign's tag for it
	layer     string                                                      // media type of the layers that hold them
	artifacts []string                                                    // artifact types of referrers that may hold them
	bundle    bool                                                        // sigstore bundles, read from referrers only
}

var (
	SignatureKind = Kind{suffix: ".sig", tag: ociremote.SignatureTag, layer: types.SimpleSigningMediaType, artifacts: []string{sigArtifactType}}
	// Cosign writes attestation referrers with an empty config and the
	// in-toto artifact type; registries without the referrers API list them
	// through the fallback tag by their config media type.
	AttestationKind = Kind{suffix: ".att", tag: ociremote.AttestationTag, layer: types.DssePayloadType, artifacts: []string{attArtifactType, ocispec.MediaTypeEmptyJSON}}
	// BundleKind is sigstore bundles (cosign v3's default format): OCI 1.1
	// referrers holding one bundle layer, signatures and attestations
	// alike; only the verified statement tells which. They have no cosign
	// tag. cosign v2's library (go-containerregistry v0.20) lists them in
	// the referrers fallback tag by their empty config's media type.
	BundleKind = Kind{suffix: ".bundle", layer: bundleLayerPrefix, artifacts: []string{BundleArtifactType, ocispec.MediaTypeEmptyJSON}, bundle: true}
)

// BundleArtifactType is the artifact type of a sigstore bundle v0.3
// referrer (and the media type of its layer).
const BundleArtifactType = "application/vnd.dev.sigstore.bundle.v0.3+json"

// bundleLayerPrefix starts the media type of every sigstore bundle
// version (v0.1, v0.2 as application/vnd.dev.sigstore.bundle+json;version=).
const bundleLayerPrefix = "application/vnd.dev.sigstore.bundle"

// Artifact types of referrers that hold signatures and attestations, as
// cosign writes them.
const (
	sigArtifactType = "application/vnd.dev.cosign.artifact.sig.v1+json"
	attArtifactType = "application/vnd.in-toto+json"
)

// Where selects the storage schemes to read.
type Where struct{ Tags, Referrers bool }

// WriteScheme is where r writes: reads for duplicate detection look only
// there, because that is where a write would land.
func (r *Store) WriteScheme() Where {
	if r.mode == Referrers {
		return Where{Referrers: true}
	}
	return Where{Tags: true}
}

// Entries is what one read found of one Kind.
type Entries struct {
	// OK are the entries that parse, copied into memory.
	OK []oci.Signature
	// All are every entry in stored order: OK's copies and the malformed
	// entries as read. A tag scheme rewrite keeps All, so an entry ociwf
	// cannot parse is neither dropped nor fatal.
	All []oci.Signature
	// Malformed describes the entries that do not parse.
	Malformed []Malformed
	// Bundles are the sigstore bundles that parse (BundleKind only).
	Bundles []Bundle
}

// Bundle is one sigstore bundle read from a referrer, parsed by
// sigstore-go and not yet verified.
type Bundle struct {
	// Manifest is the referrer holding it.
	Manifest string
	// Bundle is the parsed bundle, v0.3 or later.
	Bundle *sgbundle.Bundle
}

func (h *Entries) add(o Entries) {
	h.OK = append(h.OK, o.OK...)
	h.Bundles = append(h.Bundles, o.Bundles...)
	h.All = append(h.All, o.All...)
	h.Malformed = append(h.Malformed, o.Malformed...)
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
	// that Kind at all.
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

// Read gathers the stored signatures or attestations of d, one Entries
// per Kind asked for, from the chosen schemes: each kind's cosign tag, and
// one listing of the referrers for all kinds. Referrers are recognised by
// their layers' media type, not only by the artifact type a registry
// reports for them. Entries that do not parse are skipped, logged and
// listed in the Entries's malformed.
func (r *Store) Read(ctx context.Context, d name.Digest, ropts []ociremote.Option, w Where, kinds ...Kind) ([]Entries, error) {
	out, err := r.read(ctx, d, ropts, w, kinds...)
	if err != nil {
		return nil, r.resetOnCancel(err)
	}
	for _, h := range out {
		for _, m := range h.Malformed {
			r.log.WarnContext(ctx, "malformed entry skipped", "subject", d.String(), "mode", m.Mode.String(), "kind", m.Kind, "manifest", m.Manifest, "layer", m.Layer, "reason", m.Reason)
		}
	}
	return out, nil
}

func (r *Store) read(ctx context.Context, d name.Digest, ropts []ociremote.Option, w Where, kinds ...Kind) ([]Entries, error) {
	out := make([]Entries, len(kinds))
	var g errgroup.Group
	if w.Tags {
		for i, k := range kinds {
			if k.bundle {
				continue
			}
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
	if !w.Referrers {
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
	found := make([][]Entries, len(kinds)) // per Kind, per referrer
	g.SetLimit(8)
	for i, k := range kinds {
		found[i] = make([]Entries, len(idx.Manifests))
		keep := func(s oci.Signature) bool {
			mt, err := s.MediaType()
			return err == nil && string(mt) == k.layer
		}
		cp := static.Copy
		if k.suffix == AttestationKind.suffix {
			// Referrer manifests drop layer annotations, and cosign's
			// verifier wants the (empty) signature annotation of
			// attestation layers; the signature itself is inside the DSSE
			// envelope.
			cp = reattest
		}
		for j, m := range idx.Manifests {
			if !slices.Contains(k.artifacts, m.ArtifactType) && (!k.bundle || !strings.HasPrefix(m.ArtifactType, bundleLayerPrefix)) {
				continue
			}
			ref := d.Repository.Digest(m.Digest.String())
			if k.bundle {
				if m.MediaType.IsIndex() {
					continue // not one cosign writes; an index is no bundle
				}
				g.Go(func() error {
					h, err := loadBundle(ref, m.ArtifactType, ropts)
					found[i][j] = h
					return err
				})
				continue
			}
			if m.MediaType.IsIndex() {
				found[i][j].Malformed = []Malformed{{Mode: Referrers, Kind: k.name(), Manifest: ref.String(),
					Reason: fmt.Sprintf("a referrer of media type %s, not an image manifest", m.MediaType)}}
				continue
			}
			g.Go(func() error {
				h, err := load(ref, Referrers, k, ropts, keep, cp)
				if err == nil && len(h.All) == 0 && m.ArtifactType == k.artifacts[0] {
					// Of the artifact type cosign gives its own, yet
					// holding nothing cosign could have written.
					h.Malformed = append(h.Malformed, Malformed{Mode: Referrers, Kind: k.name(), Manifest: ref.String(),
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

// name is "signature", "attestation" or "bundle".
func (k Kind) name() string {
	switch k.suffix {
	case AttestationKind.suffix:
		return "attestation"
	case BundleKind.suffix:
		return "bundle"
	}
	return "signature"
}

// loadBundle reads the sigstore bundle of one referrer, listed with
// artifactType, with cosign's reader (one layer of a bundle media type,
// parsed and checked by sigstore-go, v0.3 or later as cosign requires).
// A referrer of a bundle artifact type that is not a valid bundle is
// malformed; one of the empty-JSON type (cosign's legacy attestations
// too) that holds no bundle layer is simply not a bundle. Failures to
// read fail the load.
func loadBundle(ref name.Digest, artifactType string, ropts []ociremote.Option) (Entries, error) {
	// A layer its manifest declares over the limit is malformed, not
	// fetched: read, it would fail the whole load (anyone with push
	// access could block verification with one such referrer).
	if reason, err := oversizedLayer(ref, ropts); err != nil {
		return Entries{}, fmt.Errorf("read %s: %w", ref, err)
	} else if reason != "" {
		return Entries{Malformed: []Malformed{{Mode: Referrers, Kind: BundleKind.name(), Manifest: ref.String(), Reason: reason}}}, nil
	}
	b, err := ociremote.Bundle(ref, ropts...)
	if err == nil {
		return Entries{Bundles: []Bundle{{Manifest: ref.String(), Bundle: b}}}, nil
	}
	if readError(err) {
		return Entries{}, fmt.Errorf("read %s: %w", ref, err)
	}
	if !strings.HasPrefix(artifactType, bundleLayerPrefix) && notBundle(err) {
		return Entries{}, nil
	}
	return Entries{Malformed: []Malformed{{Mode: Referrers, Kind: BundleKind.name(), Manifest: ref.String(), Reason: err.Error()}}}, nil
}

// oversizedLayer says which layer of the manifest at ref its manifest
// declares over MaxAccessoryBytes, or returns "". Only the manifest is
// read; a manifest that cannot be read as an image is left to the bundle
// reader to classify.
func oversizedLayer(ref name.Digest, ropts []ociremote.Option) (string, error) {
	sigs, err := ociremote.Signatures(ref, ropts...)
	if err != nil {
		if readError(err) {
			return "", err
		}
		return "", nil
	}
	m, err := sigs.Manifest()
	if err != nil {
		if readError(err) {
			return "", err
		}
		return "", nil
	}
	for i, l := range m.Layers {
		if l.Size > MaxAccessoryBytes {
			return fmt.Sprintf("layer %d of %d bytes, over the %d byte limit for signatures and attestations", i, l.Size, MaxAccessoryBytes), nil
		}
	}
	return "", nil
}

// notBundle reports cosign's reader refusing a manifest for its layers'
// shape (not exactly one layer, or not a bundle layer), as opposed to a
// bundle layer that does not parse.
func notBundle(err error) bool {
	switch err.Error() {
	case "expected exactly one layer", "expected bundle layer":
		return true
	}
	return false
}

// load reads the signature layers of one manifest, found in mode m; a
// missing manifest has none. Layers are fetched once, concurrently, and
// kept in memory (remote layers would otherwise be downloaded again on
// every look at them): keep selects the layers wanted, and copyLayer makes the
// in-memory copy. A layer whose descriptor does not parse as cosign's is
// malformed: it is not fetched, and is returned as read. Failures to read
// fail the load.
func load(ref name.Reference, m Mode, k Kind, ropts []ociremote.Option, keep func(oci.Signature) bool, copyLayer func(oci.Signature) (oci.Signature, error)) (Entries, error) {
	sigs, err := ociremote.Signatures(ref, ropts...)
	var got []oci.Signature
	if err == nil {
		got, err = sigs.Get()
	}
	if err != nil {
		if readError(err) {
			return Entries{}, fmt.Errorf("read %s: %w", ref, err)
		}
		// The manifest itself is not one cosign writes (an index, say).
		return Entries{Malformed: []Malformed{{Mode: m, Kind: k.name(), Manifest: ref.String(), Reason: err.Error()}}}, nil
	}
	got = slices.DeleteFunc(got, func(s oci.Signature) bool { return !keep(s) })
	if len(got) > MaxSignatures {
		return Entries{}, fmt.Errorf("read %s: %d signatures or attestations, over the %d read: %w", ref, len(got), MaxSignatures, errdef.ErrTooLarge)
	}
	// reattest reads only the payload: referrer attestations carry no
	// cosign annotations to check.
	annotated := k.suffix == SignatureKind.suffix || m == TagScheme
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
			c, err := copyLayer(s)
			if err != nil {
				return fmt.Errorf("read %s: %w", ref, err)
			}
			all[i] = c
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return Entries{}, err
	}
	h := Entries{All: all}
	for i, s := range all {
		if bad[i] != nil {
			h.Malformed = append(h.Malformed, *bad[i])
			continue
		}
		h.OK = append(h.OK, s)
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

// IsAttestation reports whether k is AttestationKind.
func (k Kind) IsAttestation() bool { return k.suffix == AttestationKind.suffix }
