package attest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"

	"ociwf.dev/ociwf/errdef"
)

// Mode says where signatures and attestations are stored.
type Mode int

const (
	// TagScheme stores them as cosign v2 does by default: in manifests
	// tagged sha256-<hex>.sig and sha256-<hex>.att next to the artifact.
	TagScheme Mode = iota
	// Referrers stores them as OCI 1.1 referrers (manifests whose subject
	// is the artifact), for registries that serve the referrers API; stock
	// cosign reads such signatures with --experimental-oci11.
	Referrers
)

// String returns "tag" or "referrers".
func (m Mode) String() string {
	if m == Referrers {
		return "referrers"
	}
	return "tag"
}

// MarshalText writes "tag" or "referrers".
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// RegistryOptions tune a Registry. The zero value uses the tag scheme.
type RegistryOptions struct {
	Mode Mode
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Registry is the signature and attestation store: it stores and finds
// cosign signatures and attestations in the registries a Client reaches,
// authenticating as the Client does.
type Registry struct {
	client    Client
	mode      Mode
	log       *slog.Logger
	transport http.RoundTripper // the Client's, bounded

	// One puller and pusher serve every operation, so pings, connections
	// and tokens are shared instead of renegotiated per call.
	mu    sync.Mutex
	reuse []remote.Option // nil until built, and after a cancelled operation
}

// NewRegistry returns a Registry that connects through c (a
// *target.Opener, or NewClient's).
func NewRegistry(c Client, opts RegistryOptions) *Registry {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{client: c, mode: opts.Mode, log: log, transport: bounded{c.Transport()}}
}

// Mode returns where r writes.
func (r *Registry) Mode() Mode { return r.mode }

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

// options returns cosign registry options for one operation under ctx on
// the registry of d.
func (r *Registry) options(ctx context.Context, d name.Digest) []ociremote.Option {
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

// settle drops the shared puller and pusher after an operation ended by
// its context: they keep the connection setup of each repository, and one
// interrupted midway would fail every later operation there. It returns
// err.
func (r *Registry) settle(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		r.mu.Lock()
		r.reuse = nil
		r.mu.Unlock()
	}
	return err
}

// base returns the connection options of one operation under ctx.
func (r *Registry) base(ctx context.Context) []remote.Option {
	ropts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(keychain{ctx: ctx, c: r.client}),
	}
	if ua := userAgent(r.client); ua != "" {
		ropts = append(ropts, remote.WithUserAgent(ua))
	}
	ropts = append(ropts, remote.WithTransport(r.transport))
	return ropts
}

// nameOptions are the options that parse references on host.
func (r *Registry) nameOptions(host string) []name.Option {
	if plainHTTP(r.client, host) {
		return []name.Option{name.Insecure}
	}
	return nil
}

// digestRef returns the subject as a go-containerregistry digest reference.
func (r *Registry) digestRef(s Subject) (name.Digest, error) {
	if err := s.Digest.Validate(); err != nil {
		return name.Digest{}, fmt.Errorf("subject %s: %v: %w", s, err, errdef.ErrInvalid)
	}
	host, _, _ := strings.Cut(s.Repository, "/")
	d, err := name.NewDigest(s.String(), r.nameOptions(host)...)
	if err != nil {
		return name.Digest{}, fmt.Errorf("subject %s: %v: %w", s, err, errdef.ErrInvalid)
	}
	return d, nil
}

// Stored is what a registry held for one subject when Prefetch read it.
type Stored struct {
	subj       Subject
	mode       Mode
	sigs, atts haul
}

// Prefetch reads the signatures and attestations already stored for subj
// where r writes. Passing the result to Sign (SignOptions.Stored) and
// AttestAll saves them that read: the publish ceremony prefetches while
// the key is still being decrypted.
func (r *Registry) Prefetch(ctx context.Context, subj Subject) (*Stored, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	ropts := r.options(ctx, d)
	got, err := r.collect(ctx, d, ropts, r.writeScheme(), sigKind, attKind)
	if err != nil {
		return nil, err
	}
	return &Stored{subj: subj, mode: r.mode, sigs: got[0], atts: got[1]}, nil
}

// stored returns what is stored for d of kind k where r writes: from st
// when it was prefetched for the same digest and mode, else read now.
func (r *Registry) stored(ctx context.Context, d name.Digest, ropts []ociremote.Option, k kind, st *Stored) (haul, error) {
	if st != nil && st.mode == r.mode && st.subj.Repository == d.Repository.Name() && st.subj.Digest.String() == d.DigestStr() {
		if k.suffix == sigKind.suffix {
			return st.sigs, nil
		}
		return st.atts, nil
	}
	got, err := r.collect(ctx, d, ropts, r.writeScheme(), k)
	if err != nil {
		return haul{}, err
	}
	return got[0], nil
}
