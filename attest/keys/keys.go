// Package keys loads signing and verification keys through cosign's own
// loading code, so every key reference cosign accepts works: key files,
// KMS URIs (for the providers the program links, see package
// ociwf.dev/attest/kms), k8s:// secrets, gitlab:// variables and, in
// builds with the pkcs11key tag, PKCS#11 tokens.
//
// It links cosign's command-line packages and Kubernetes client-go. A
// program that only verifies with PEM public keys and KMS keys does not
// need it: verify uses accessory.LoadVerifier unless told otherwise
// (verify.Options.LoadKey).
package keys

import (
	"context"
	"fmt"
	"strings"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/rekor"
	"github.com/sigstore/cosign/v2/cmd/cosign/cli/sign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature"

	"ociwf.dev/attest/accessory"
)

// LoadVerifier loads a public key for verification through cosign's
// loader: a PEM public key file, a KMS URI, a k8s:// secret or a gitlab://
// variable. A failure matches accessory.ErrKey.
func LoadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	v, err := sigs.PublicKeyFromKeyRef(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w (want a PEM public key file or a KMS URI): %w", keyRef, err, accessory.ErrKey)
	}
	return v, nil
}

// LoadSigner loads the signer opts describes through cosign's own loading
// code, so every key reference cosign accepts works here. A failure to
// load the key matches accessory.ErrKey.
func LoadSigner(ctx context.Context, opts accessory.SignerOptions) (*accessory.Signer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	ko := options.KeyOpts{
		KeyRef:           opts.Key,
		PassFunc:         opts.Pass,
		FulcioURL:        orDefault(opts.FulcioURL, accessory.DefaultFulcioURL),
		RekorURL:         orDefault(opts.RekorURL, accessory.DefaultRekorURL),
		OIDCIssuer:       orDefault(opts.OIDCIssuer, accessory.DefaultOIDCIssuerURL),
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
	k := accessory.SignerKey{SignerVerifier: sv.SignerVerifier, Cert: sv.Cert, Chain: sv.Chain, Ephemeral: ephemeral, Close: sv.Close}
	if opts.TlogUpload {
		rc, err := rekor.NewClient(ko.RekorURL)
		if err != nil {
			sv.Close()
			return nil, fmt.Errorf("transparency log %s: %w", ko.RekorURL, err)
		}
		k.Rekor = rc
	}
	return accessory.NewSigner(k), nil
}

// keyError explains a key loading failure and what to do about it.
func keyError(key string, err error) error {
	switch {
	case wrongPassword(err):
		return fmt.Errorf("load key %s: wrong password (set COSIGN_PASSWORD to the key's password): %w", key, accessory.ErrKey)
	case strings.Contains(key, "://"):
		return fmt.Errorf("load key %s: %v (check the KMS provider's credentials and that the key exists): %w", key, err, accessory.ErrKey)
	default:
		return fmt.Errorf("load key %s: %v (want a cosign private key file or a KMS URI): %w", key, err, accessory.ErrKey)
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
