package accessory

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/rekor"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	"github.com/sigstore/rekor/pkg/generated/client"
	"github.com/sigstore/sigstore/pkg/signature"

	"ociwf.dev/ociwf/errdef"
)

// Public Sigstore instances, cosign's defaults for keyless signing.
const (
	DefaultFulcioURL = options.DefaultFulcioURL
	DefaultRekorURL  = options.DefaultRekorURL
)

// SignerOptions say which key signs. Exactly one of Key and Keyless is set.
type SignerOptions struct {
	// Key is a cosign private key file, or a KMS URI that cosign accepts
	// (awskms://, gcpkms://, azurekms://, hashivault://, k8s://). KMS
	// providers must be linked in by the program (blank imports of
	// github.com/sigstore/sigstore/pkg/signature/kms/...), as cosign does.
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
	OIDCIssuer   string // default https://oauth2.sigstore.dev/auth
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
	sv    *sign.SignerVerifier
	rekor *client.Rekor
	// keyed reports a long-lived key, which can recognise its own earlier
	// signatures; keyless signers use a fresh key every time.
	keyed bool
}

// ErrKey marks failures to load a signing or verification key.
var ErrKey = errors.New("key not usable")

// Validate checks that opts names exactly one of a key and keyless
// signing, without loading anything; a failure matches ErrKey and
// errdef.ErrInvalid. LoadSigner checks it first.
func (opts SignerOptions) Validate() error {
	switch {
	case opts.Key == "" && !opts.Keyless:
		return fmt.Errorf("no signing key: give a key file or KMS URI, or choose keyless signing: %w: %w", ErrKey, errdef.ErrInvalid)
	case opts.Key != "" && opts.Keyless:
		return fmt.Errorf("a key and keyless signing are mutually exclusive: %w: %w", ErrKey, errdef.ErrInvalid)
	}
	return nil
}

// LoadSigner loads the signer opts describes through cosign's own loading
// code, so every key reference cosign accepts works here.
func LoadSigner(ctx context.Context, opts SignerOptions) (*Signer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ko := options.KeyOpts{
		KeyRef:           opts.Key,
		PassFunc:         opts.Pass,
		FulcioURL:        orDefault(opts.FulcioURL, DefaultFulcioURL),
		RekorURL:         orDefault(opts.RekorURL, DefaultRekorURL),
		OIDCIssuer:       orDefault(opts.OIDCIssuer, options.DefaultOIDCIssuerURL),
		OIDCClientID:     orDefault(opts.OIDCClientID, "sigstore"),
		IDToken:          opts.IDToken,
		SkipConfirmation: true,
	}
	if ko.PassFunc == nil {
		ko.PassFunc = func(bool) ([]byte, error) { return nil, nil }
	}
	sv, ephemeral, err := sign.SignerFromKeyOpts(ctx, opts.Cert, opts.CertChain, ko)
	if err != nil {
		return nil, keyError(opts.Key, err)
	}
	if strings.Contains(opts.Key, "://") {
		// KMS signers connect lazily; ask for the public key now so that a
		// missing credential fails before anything is pushed.
		if _, err := sv.PublicKey(); err != nil {
			sv.Close()
			return nil, keyError(opts.Key, err)
		}
	}
	if ephemeral {
		ksv, err := sign.KeylessSigner(ctx, ko, sv)
		if err != nil {
			sv.Close()
			return nil, fmt.Errorf("keyless signing: get a certificate from %s: %w", ko.FulcioURL, err)
		}
		sv = ksv
	}
	s := &Signer{sv: sv, keyed: !ephemeral}
	if opts.TlogUpload {
		rc, err := rekor.NewClient(ko.RekorURL)
		if err != nil {
			sv.Close()
			return nil, fmt.Errorf("transparency log %s: %w", ko.RekorURL, err)
		}
		s.rekor = rc
	}
	return s, nil
}

// keyError explains a key loading failure and what to do about it.
func keyError(key string, err error) error {
	switch {
	case wrongPassword(err):
		return fmt.Errorf("load key %s: wrong password (set COSIGN_PASSWORD to the key's password): %w", key, ErrKey)
	case strings.Contains(key, "://"):
		return fmt.Errorf("load key %s: %v (check the KMS provider's credentials and that the key exists): %w", key, err, ErrKey)
	default:
		return fmt.Errorf("load key %s: %v (want a cosign private key file or a KMS URI): %w", key, err, ErrKey)
	}
}

// wrongPassword recognises a key file that the password does not decrypt.
// cosign.LoadPrivateKey returns go-securesystemslib's encrypted.Decrypt
// error wrapped, and Decrypt reports a failed decryption only as
// errors.New("encrypted: decryption failed"): no type or sentinel to
// match, so the text is matched here and nowhere else.
func wrongPassword(err error) bool { return strings.Contains(err.Error(), "decryption failed") }

func orDefault(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// PublicKey returns the signer's public key.
func (s *Signer) PublicKey() (crypto.PublicKey, error) { return s.sv.PublicKey() }

// Verifier returns a verifier for the signer's own signatures.
func (s *Signer) Verifier() signature.Verifier { return s.sv }

// Certificate returns the PEM certificate signatures carry (keyless, or
// given with SignerOptions.Cert), or nil.
func (s *Signer) Certificate() []byte { return s.sv.Cert }

// Close releases the key.
func (s *Signer) Close() { s.sv.Close() }
