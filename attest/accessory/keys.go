package accessory

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/blob"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
)

// LoadVerifier loads a public key for verification: a PEM public key file
// (or an http(s):// or env:// reference to one, as cosign reads them) or a
// KMS URI for a provider the program links (package ociwf.dev/attest/kms
// links them all). k8s://, gitlab:// and pkcs11: references need cosign's
// full loader, keys.LoadVerifier in package ociwf.dev/attest/keys. A
// failure matches ErrKey.
func LoadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	v, err := loadVerifier(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w (want a PEM public key file or a KMS URI): %w", keyRef, err, ErrKey)
	}
	return v, nil
}

func loadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	scheme, _, hasScheme := strings.Cut(keyRef, "://")
	if hasScheme || strings.HasPrefix(keyRef, "pkcs11:") {
		switch {
		case strings.HasPrefix(keyRef, "pkcs11:"):
			scheme = "pkcs11"
			fallthrough
		case scheme == "k8s" || scheme == "gitlab":
			return nil, fmt.Errorf("%s key references are loaded by keys.LoadVerifier (package ociwf.dev/attest/keys; verify.Options.LoadKey)", scheme)
		}
	}
	var notFound *kms.ProviderNotFoundError
	kv, err := kms.Get(ctx, keyRef, crypto.SHA256)
	switch {
	case err == nil:
		return kv, nil
	case !errors.As(err, &notFound):
		return nil, err
	case hasScheme && scheme != "http" && scheme != "https" && scheme != "env":
		return nil, fmt.Errorf("no KMS provider for %s:// is linked into this program (import ociwf.dev/attest/kms, or the provider's package under github.com/sigstore/sigstore/pkg/signature/kms)", scheme)
	}
	raw, err := blob.LoadFileOrURL(keyRef)
	if err != nil {
		return nil, err
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(raw)
	if err != nil {
		return nil, fmt.Errorf("pem to public key: %w", err)
	}
	return signature.LoadVerifier(pub, crypto.SHA256)
}

// PassFunc returns the password of an encrypted key; confirm asks for it
// twice (when a new key is being encrypted). It is cosign's PassFunc.
type PassFunc = cosign.PassFunc

// PassFromTerminal reads a key password from the terminal as cosign does,
// without echo; with confirm it asks twice and fails when they differ.
func PassFromTerminal(confirm bool) ([]byte, error) { return cosign.GetPassFromTerm(confirm) }

// KeyPair is a cosign key pair: the private key encrypted with a password
// (PEM type "ENCRYPTED SIGSTORE PRIVATE KEY") and the public key in PEM.
type KeyPair struct {
	Private []byte
	Public  []byte
}

// GenerateKeyPair makes a new ECDSA P-256 key pair in the format of
// `cosign generate-key-pair`, encrypting the private key with the password
// pass returns.
func GenerateKeyPair(pass PassFunc) (*KeyPair, error) {
	kb, err := cosign.GenerateKeyPair(pass)
	if err != nil {
		return nil, fmt.Errorf("generate key pair: %w", err)
	}
	return &KeyPair{Private: kb.PrivateBytes, Public: kb.PublicBytes}, nil
}

// ErrKeyExists is returned by WriteKeyFiles when a key file is already there
// and overwriting was not asked for.
var ErrKeyExists = errors.New("key file exists")

// WriteKeyFiles writes kp to PREFIX.key (mode 0600) and PREFIX.pub (0644),
// cosign's file names. Without overwrite, an existing file is an error
// matching ErrKeyExists and nothing is written.
func WriteKeyFiles(prefix string, kp *KeyPair, overwrite bool) (private, public string, err error) {
	private, public = prefix+".key", prefix+".pub"
	if !overwrite {
		for _, f := range []string{private, public} {
			if _, err := os.Stat(f); err == nil {
				return "", "", fmt.Errorf("%s: %w", f, ErrKeyExists)
			} else if !errors.Is(err, fs.ErrNotExist) {
				return "", "", fmt.Errorf("check %s: %w", f, err)
			}
		}
	}
	if err := os.WriteFile(private, kp.Private, 0o600); err != nil {
		return "", "", fmt.Errorf("write private key: %w", err)
	}
	if err := os.WriteFile(public, kp.Public, 0o644); err != nil { //nolint:gosec // a public key is public
		return "", "", fmt.Errorf("write public key: %w", err)
	}
	return private, public, nil
}
