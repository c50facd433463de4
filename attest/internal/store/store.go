// Package store stores and finds cosign signatures and attestations in
// registries, in either scheme (cosign's sha256-<hex>.sig and .att tags,
// OCI 1.1 referrers), and sigstore bundles as referrers: bounded reads, entries that do not parse skipped and
// listed, writes that keep every stored entry. It makes and checks
// nothing; package attest signs, attests and verifies on top of it.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	ggtypes "github.com/google/go-containerregistry/pkg/v1/types"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/empty"
	"github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"oras.land/oras-go/v2/content"
	oraserr "oras.land/oras-go/v2/errdef"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
)

// Store reaches the registries a Client reaches, authenticating as the
// Client does, and writes in one Mode.
type Store struct {
	client    Client
	mode      Mode
	log       *slog.Logger
	transport http.RoundTripper // the Client's, bounded

	// One puller and pusher serve every operation, so pings, connections
	// and tokens are shared instead of renegotiated per call.
	mu    sync.Mutex
	reuse []remote.Option // nil until built, and after a cancelled operation
}

// New returns a Store that connects through c and writes in mode; log
// receives warnings for skipped entries.
func New(c Client, mode Mode, log *slog.Logger) *Store {
	return &Store{client: c, mode: mode, log: log, transport: bounded{c.Transport()}}
}

// Mode returns where s writes.
func (r *Store) Mode() Mode { return r.mode }

// Digest parses REPOSITORY@DIGEST as a reference on its registry.
func (r *Store) Digest(ref string) (name.Digest, error) {
	host, _, _ := strings.Cut(ref, "/")
	return name.NewDigest(ref, r.nameOptions(host)...)
}

// keychain hands go-containerregistry the Client's credentials.
type keychain struct {
	ctx context.Context
	c   Client
}

func (k keychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(k.ctx, res)
}

func (k keychain) ResolveContext(ctx context.Context, res authn.Resource) (authn.Authenticator, error) {
	cred, err := k.c.Credential(ctx, res.RegistryStr())
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", res.RegistryStr(), err)
	}
	if cred.Username == "" && cred.Password == "" && cred.AccessToken == "" && cred.RefreshToken == "" {
		return authn.Anonymous, nil
	}
	return authn.FromConfig(authn.AuthConfig{
		Username:      cred.Username,
		Password:      cred.Password,
		IdentityToken: cred.RefreshToken,
		RegistryToken: cred.AccessToken,
	}), nil
}

// Options returns cosign registry options for one operation under ctx on
// the registry of d.
func (r *Store) Options(ctx context.Context, d name.Digest) []ociremote.Option {
	r.mu.Lock()
	if r.reuse == nil {
		// The shared puller and pusher resolve credentials beyond any one
		// operation's context.
		shared := r.base(context.WithoutCancel(ctx))
		if pl, err := remote.NewPuller(shared...); err == nil {
			if ps, err := remote.NewPusher(shared...); err == nil {
				r.reuse = []remote.Option{remote.Reuse(pl), remote.Reuse(ps)}
			}
		}
	}
	reuse := r.reuse
	r.mu.Unlock()
	return []ociremote.Option{
		ociremote.WithRemoteOptions(append(r.base(ctx), reuse...)...),
		ociremote.WithNameOptions(r.nameOptions(d.RegistryStr())...),
	}
}

// resetOnCancel drops the shared puller and pusher after an operation
// ended by its context: they keep the connection setup of each
// repository, and one interrupted midway would fail every later operation
// there. It returns err.
func (r *Store) resetOnCancel(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		r.mu.Lock()
		r.reuse = nil
		r.mu.Unlock()
	}
	return err
}

// base returns the connection options of one operation under ctx.
func (r *Store) base(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain{ctx: ctx, c: r.client}),
	}
	if ua := userAgent(r.client); ua != "" {
		ropts = append(ropts, remote.WithUserAgent(ua))
	}
	// One retry policy for every registry request: the Client's
	// transport retries (target.RetryTransport), so
	// go-containerregistry's own retries are off.
	ropts = append(ropts, remote.WithTransport(r.transport),
		remote.WithRetryBackoff(remote.Backoff{Steps: 1}),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithRetryStatusCodes())
	return ropts
}

// nameOptions are the options that parse references on host.
func (r *Store) nameOptions(host string) []name.Option {
	if plainHTTP(r.client, host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Write stores all as the whole set of kind k for d under the tag scheme
// (the manifest is rewritten with exactly these layers), or adds them as
// one referrer of d. Callers pass every stored entry with the new ones for
// the tag scheme, so a write only appends.
func (r *Store) Write(d name.Digest, ropts []ociremote.Option, k Kind, all []oci.Signature) error {
	var sigs, atts []oci.Signature
	if k.suffix == AttestationKind.suffix {
		atts = all
	} else {
		sigs = all
	}
	se, err := entityWith(d, sigs, atts)
	if err != nil {
		return err
	}
	switch {
	case r.mode == Referrers && k.suffix == AttestationKind.suffix:
		err = ociremote.WriteAttestationsReferrer(d, se, ropts...)
	case r.mode == Referrers:
		err = ociremote.WriteSignaturesExperimentalOCI(d, se, ropts...)
	case k.suffix == AttestationKind.suffix:
		err = ociremote.WriteAttestations(d.Repository, se, ropts...)
	default:
		err = ociremote.WriteSignatures(d.Repository, se, ropts...)
	}
	return r.resetOnCancel(err)
}

// Refused reports a write the registry denied (HTTP 403).
func Refused(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusForbidden
}

// entity is a signed entity whose signatures and attestations are exactly
// sigs and atts.
type entity struct {
	oci.SignedEntity
	sigs, atts oci.Signatures
}

func (e entity) Signatures() (oci.Signatures, error)   { return e.sigs, nil }
func (e entity) Attestations() (oci.Signatures, error) { return e.atts, nil }

// entityWith returns an entity for d holding sigs and atts.
func entityWith(d name.Digest, sigs, atts []oci.Signature) (oci.SignedEntity, error) {
	s, err := Signatures(sigs)
	if err != nil {
		return nil, err
	}
	a, err := Signatures(atts)
	if err != nil {
		return nil, err
	}
	return entity{SignedEntity: emptyEntity(d), sigs: s, atts: a}, nil
}

// emptyEntity is an entity with no signatures or attestations yet, for
// writes that must carry only the new one (referrers).
func emptyEntity(d name.Digest) oci.SignedEntity {
	se, _ := empty.SignedImage(d) // cannot fail: d is a valid digest reference
	return se
}

// Signatures wraps sigs for cosign functions that take oci.Signatures.
func Signatures(sigs []oci.Signature) (oci.Signatures, error) {
	return mutate.AppendSignatures(empty.Signatures(), false, sigs...)
}

// WriteBundle stores a sigstore bundle v0.3 about d as an OCI 1.1
// referrer, in the manifest cosign v3 writes (cosign's WriteReferrer): an
// empty config, the bundle as the single layer, and its predicate type and
// creation time among the manifest's annotations. The push goes through
// oras-go, which on a registry without the referrers API lists the
// referrer in the fallback tag sha256-<hex> under the bundle artifact type
// with the manifest's annotations (go-containerregistry v0.20, cosign v2's,
// lists the empty config's media type instead).
func (r *Store) WriteBundle(ctx context.Context, d name.Digest, bundle []byte, predicateType string) error {
	return r.resetOnCancel(r.writeBundle(ctx, d, bundle, predicateType))
}

func (r *Store) writeBundle(ctx context.Context, d name.Digest, bundle []byte, predicateType string) error {
	repo, err := orasremote.NewRepository(d.Repository.Name())
	if err != nil {
		return fmt.Errorf("repository %s: %w", d.Repository, err)
	}
	repo.PlainHTTP = plainHTTP(r.client, d.RegistryStr())
	client := &auth.Client{Client: &http.Client{Transport: r.transport}, Credential: r.client.Credential, Cache: auth.NewCache()}
	if ua := userAgent(r.client); ua != "" {
		client.SetUserAgent(ua)
	}
	repo.Client = client
	subject, err := repo.Resolve(ctx, d.DigestStr())
	if err != nil {
		return fmt.Errorf("resolve %s: %w", d, err)
	}
	config := []byte("{}")
	cfg := content.NewDescriptorFromBytes(ocispec.MediaTypeEmptyJSON, config)
	layer := content.NewDescriptorFromBytes(BundleArtifactType, bundle)
	for _, b := range []struct {
		desc ocispec.Descriptor
		data []byte
	}{{cfg, config}, {layer, bundle}} {
		if ok, err := repo.Blobs().Exists(ctx, b.desc); err == nil && ok {
			continue
		}
		if err := repo.Blobs().Push(ctx, b.desc, bytes.NewReader(b.data)); err != nil && !errors.Is(err, oraserr.ErrAlreadyExists) {
			return fmt.Errorf("upload bundle blob %s: %w", b.desc.Digest, err)
		}
	}
	// cosign's referrerManifest: go-containerregistry's manifest (its
	// field order), with the artifact type on the config too.
	m := struct {
		v1.Manifest
		ArtifactType string `json:"artifactType,omitempty"`
	}{v1.Manifest{
		SchemaVersion: 2,
		MediaType:     ggtypes.OCIManifestSchema1,
		Config: v1.Descriptor{
			MediaType:    ggtypes.MediaType(ocispec.MediaTypeEmptyJSON),
			ArtifactType: BundleArtifactType,
			Digest:       v1.Hash{Algorithm: cfg.Digest.Algorithm().String(), Hex: cfg.Digest.Encoded()},
			Size:         cfg.Size,
		},
		Layers: []v1.Descriptor{{
			MediaType: ggtypes.MediaType(BundleArtifactType),
			Digest:    v1.Hash{Algorithm: layer.Digest.Algorithm().String(), Hex: layer.Digest.Encoded()},
			Size:      layer.Size,
		}},
		Annotations: map[string]string{
			ocispec.AnnotationCreated:           time.Now().UTC().Format(time.RFC3339),
			"dev.sigstore.bundle.content":       "dsse-envelope",
			"dev.sigstore.bundle.predicateType": predicateType,
		},
		Subject: &v1.Descriptor{
			MediaType: ggtypes.MediaType(subject.MediaType),
			Digest:    v1.Hash{Algorithm: subject.Digest.Algorithm().String(), Hex: subject.Digest.Encoded()},
			Size:      subject.Size,
		},
	}, BundleArtifactType}
	raw, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("bundle referrer manifest: %w", err)
	}
	desc := content.NewDescriptorFromBytes(ocispec.MediaTypeImageManifest, raw)
	if err := repo.Manifests().Push(ctx, desc, bytes.NewReader(raw)); err != nil {
		return fmt.Errorf("push bundle referrer of %s: %w", d, err)
	}
	return nil
}
