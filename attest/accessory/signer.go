package accessory

import (
	"context"
	"crypto"
	"errors"
	"fmt"

	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"ociwf.dev/ociwf/errdef"
)

// Public Sigstore instances, cosign's defaults for keyless signing.
const (
	DefaultFulcioURL     = "https://fulcio.sigstore.dev"
	DefaultRekorURL      = "https://rekor.sigstore.dev"
	DefaultOIDCIssuerURL = "https://oauth2.sigstore.dev/auth"
)

// SignerOptions say which key signs; keys.LoadSigner (package
// ociwf.dev/attest/keys) loads it. Exactly one of Key and Keyless is set.
type SignerOptions struct {
	// Key is a cosign private key file, or a KMS URI that cosign accepts
	// (awskms://, gcpkms://, azurekms://, hashivault://, k8s://,
	// gitlab://). A KMS reference goes to a provider the program links
	// (import _ "ociwf.dev/attest/kms", as cosign links them) or else to
	// a sigstore KMS plugin, sigstore-kms-<scheme>, on PATH
	// (ociwf.dev/cmd/sigstore-kms-*, package ociwf.dev/attest/kms/plugin).
	Key string
	// Pass returns the password of an encrypted key file.
	Pass PassFunc
	// Cert and CertChain optionally attach an X.509 certificate (and its
	// chain, PEM) for Key to every signature.
	Cert, CertChain string

	// Keyless signs with a short-lived Fulcio certificate for an ephemeral
	// key, bound to an OIDC identity.
	Keyless      bool
	FulcioURL    string // default DefaultFulcioURL
	OIDCIssuer   string // default DefaultOIDCIssuerURL
	OIDCClientID string // default "sigstore"
	// IDToken is an OIDC identity token, or a path to a file holding one;
	// empty runs cosign's interactive or ambient-credential flow.
	IDToken string

	// TlogUpload records every signature in the Rekor transparency log at
	// RekorURL (default DefaultRekorURL) and stores the inclusion bundle
	// with it. Off by default.
	TlogUpload bool
	RekorURL   string
}

// Signer signs payloads for Registry.Sign and Registry.Attest. Close it when
// done: hardware and KMS keys hold connections.
type Signer struct {
	sv          signature.SignerVerifier
	cert, chain []byte
	close       func()
	rekor       *client.Rekor
	// keyed reports a long-lived key, which can recognise its own earlier
	// signatures; keyless signers use a fresh key every time.
	keyed bool
}

// ErrKey marks failures to load a signing or verification key.
var ErrKey = errors.New("key not usable")

// Validate checks that opts names exactly one of a key and keyless
// signing, without loading anything; a failure matches ErrKey and
// errdef.ErrInvalid. keys.LoadSigner checks it first.
func (opts SignerOptions) Validate() error {
	switch {
	case opts.Key == "" && !opts.Keyless:
		return fmt.Errorf("no signing key: give a key file or KMS URI, or choose keyless signing: %w: %w", ErrKey, errdef.ErrInvalid)
	case opts.Key != "" && opts.Keyless:
		return fmt.Errorf("a key and keyless signing are mutually exclusive: %w: %w", ErrKey, errdef.ErrInvalid)
	}
	return nil
}

// SignerKey is a loaded signing key and what its signatures carry besides
// the signature. Package ociwf.dev/attest/keys loads one from
// SignerOptions (keys.LoadSigner); NewSigner wraps any other.
type SignerKey struct {
	signature.SignerVerifier
	// Cert and Chain are the PEM certificate for the key and its chain,
	// attached to every signature; nil for a bare key.
	Cert, Chain []byte
	// Ephemeral marks a key made for this signer only (keyless signing),
	// which cannot recognise its own earlier signatures.
	Ephemeral bool
	// Rekor, if set, records every signature in that transparency log and
	// stores the inclusion bundle with it.
	Rekor *client.Rekor
	// Close, if set, releases the key (a KMS connection, a token).
	Close func()
}

// NewSigner returns a Signer signing with k.
func NewSigner(k SignerKey) *Signer {
	return &Signer{sv: k.SignerVerifier, cert: k.Cert, chain: k.Chain, close: k.Close, rekor: k.Rekor, keyed: !k.Ephemeral}
}

// bytes returns what a transparency log entry names as the signer: the
// certificate, or the public key in PEM.
func (s *Signer) bytes(ctx context.Context) ([]byte, error) {
	if s.cert != nil {
		return s.cert, nil
	}
	pub, err := s.sv.PublicKey(sigopts.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	return cryptoutils.MarshalPublicKeyToPEM(pub)
}

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() (crypto.PublicKey, error) { return s.sv.PublicKey() }

// Verifier returns a verifier for the signer's own signatures.
func (s *Signer) Verifier() signature.Verifier { return s.sv }

// Certificate returns the PEM certificate signatures carry (keyless, or
// given with SignerOptions.Cert), or nil.
func (s *Signer) Certificate() []byte { return s.cert }

// Close releases the key.
func (s *Signer) Close() {
	if s.close != nil {
		s.close()
	}
}
