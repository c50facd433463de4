package accessory

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/google/go-containerregistry/pkg/name"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/attest/internal/store"
	"ociwf.dev/ociwf/errdef"
)

// Mode says where signatures and attestations are stored.
type Mode = store.Mode

// The storage schemes.
const (
	// TagScheme stores them as cosign v2 does by default: in manifests
	// tagged sha256-<hex>.sig and sha256-<hex>.att next to the artifact.
	TagScheme = store.TagScheme
	// Referrers stores them as OCI 1.1 referrers (manifests whose subject
	// is the artifact), for registries that serve the referrers API; stock
	// cosign reads such signatures with --experimental-oci11.
	Referrers = store.Referrers
)

// Limits on what is read from a registry for signatures and attestations,
// so that a hostile registry cannot exhaust memory.
const (
	// MaxAccessoryBytes bounds one response: a signature or attestation
	// manifest, a layer. A referrers page is bounded tighter, by the
	// transport (target.MaxReferrersPageBytes).
	MaxAccessoryBytes = store.MaxAccessoryBytes
	// MaxReferrers bounds the referrers of one subject that are read.
	MaxReferrers = store.MaxReferrers
	// MaxSignatures bounds the signatures or attestations read from one
	// manifest (a cosign tag or a referrer).
	MaxSignatures = store.MaxSignatures
)

// Malformed is a stored entry that does not parse as a cosign signature or
// attestation; it is skipped (see store.Malformed for its fields).
type Malformed = store.Malformed

// Client is what a Registry needs to reach registries (see store.Client):
// a transport and a credential function, optionally PlainHTTP(host) and
// UserAgent(). *target.Opener is one.
type Client = store.Client

// ClientOptions describe a Client made by NewClient.
type ClientOptions = store.ClientOptions

// NewClient returns a Client from a program's own transport, credential
// function and plain-HTTP registry hosts.
func NewClient(opts ClientOptions) Client { return store.NewClient(opts) }

// RegistryOptions tune a Registry. The zero value uses the tag scheme.
type RegistryOptions struct {
	Mode Mode
	// Format is the format Sign and Attest write; the zero value is
	// FormatLegacy. Bundles are always OCI 1.1 referrers, whatever Mode.
	Format Format
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Registry is the signature and attestation store: it signs, attests and
// finds cosign signatures and attestations in the registries a Client
// reaches, authenticating as the Client does. Storage and reads are
// package store's (attest/internal/store); making and checking
// signatures and statements are this package's.
type Registry struct {
	st     *store.Store
	mode   Mode
	format Format
	log    *slog.Logger
}

// NewRegistry returns a Registry that connects through c (a
// *target.Opener, or NewClient's).
func NewRegistry(c Client, opts RegistryOptions) *Registry {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Registry{st: store.New(c, opts.Mode, log), mode: opts.Mode, format: opts.Format, log: log}
}

// Mode returns where r writes.
func (r *Registry) Mode() Mode { return r.mode }

// Format returns the format r writes.
func (r *Registry) Format() Format { return r.format }

// Result reports what Sign or Attest did.
type Result struct {
	// Subject is what was signed or attested.
	Subject Subject
	// Mode is where the signature or attestation is stored.
	Mode Mode
	// Existing is true when an equivalent signature or attestation by the
	// same key was already stored, so nothing was written.
	Existing bool
	// Replaced counts attestations removed by AttestOptions.Replace.
	Replaced int
}

// storeError explains a refused write.
func storeError(what string, subj Subject, err error) error {
	return fmt.Errorf("store %s for %s: %w (check push permission on the repository; nothing was tagged)", what, subj, err)
}

// Stored is what a registry held for one subject when Prefetch read it.
type Stored struct {
	subj        Subject
	mode        Mode
	sigs, atts  store.Entries
	withBundles bool
	bundles     store.Entries
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
	ropts := r.st.Options(ctx, d)
	out := &Stored{subj: subj, mode: r.mode}
	var g errgroup.Group
	if r.format.legacy() {
		g.Go(func() error {
			got, err := r.st.Read(ctx, d, ropts, r.st.WriteScheme(), store.SignatureKind, store.AttestationKind)
			if err == nil {
				out.sigs, out.atts = got[0], got[1]
			}
			return err
		})
	}
	if r.format.bundle() {
		g.Go(func() error {
			got, err := r.st.Read(ctx, d, ropts, store.Where{Referrers: true}, store.BundleKind)
			if err == nil {
				out.bundles, out.withBundles = got[0], true
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// stored returns what is stored for d of kind k where r writes: from st
// when it was prefetched for the same digest and mode, else read now.
func (r *Registry) stored(ctx context.Context, d name.Digest, ropts []ociremote.Option, k store.Kind, st *Stored) (store.Entries, error) {
	if st != nil && st.mode == r.mode && st.subj.Repository == d.Repository.Name() && st.subj.Digest.String() == d.DigestStr() {
		if !k.IsAttestation() {
			return st.sigs, nil
		}
		return st.atts, nil
	}
	got, err := r.st.Read(ctx, d, ropts, r.st.WriteScheme(), k)
	if err != nil {
		return store.Entries{}, err
	}
	return got[0], nil
}

// digestRef returns the subject as a go-containerregistry digest reference.
func (r *Registry) digestRef(s Subject) (name.Digest, error) {
	if err := s.Digest.Validate(); err != nil {
		return name.Digest{}, fmt.Errorf("subject %s: %v: %w", s, err, errdef.ErrInvalid)
	}
	d, err := r.st.Digest(s.String())
	if err != nil {
		return name.Digest{}, fmt.Errorf("subject %s: %v: %w", s, err, errdef.ErrInvalid)
	}
	return d, nil
}
