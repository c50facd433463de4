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
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin"
)

// LoadVerifier loads a public key for verification: a PEM public key file
// (or an http(s):// or env:// reference to one, as cosign reads them), or
// a KMS URI. KMS URIs, and cosign's k8s:// and gitlab:// references, go
// through github.com/sigstore/sigstore/pkg/signature/kms: a provider the
// program links (package ociwf.dev/attest/kms links them all) or else a
// sigstore KMS plugin, sigstore-kms-<scheme>, on PATH (ociwf.dev/cmd/...
// has one per scheme). A failure matches ErrKey; one for want of a
// provider or plugin also matches *NoProviderError.
func LoadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	v, err := loadVerifier(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w (want a PEM public key file or a KMS URI): %w", keyRef, err, ErrKey)
	}
	return v, nil
}

func loadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	if strings.HasPrefix(keyRef, "pkcs11:") {
		return nil, errors.New("pkcs11 key references are not supported (export the token's public key to a PEM file)")
	}
	var notFound *kms.ProviderNotFoundError
	kv, err := kms.Get(ctx, keyRef, crypto.SHA256)
	switch {
	case err == nil:
		// KMS keys and plugins connect lazily; read the public key now, so
		// that a missing credential or secret fails here, with its cause,
		// rather than as a signature by an untrusted key.
		if _, err := kv.PublicKey(); err != nil {
			return nil, err
		}
		return kv, nil
	case !errors.As(err, &notFound):
		return nil, err
	case KeyScheme(keyRef) != "":
		return nil, &NoProviderError{Scheme: KeyScheme(keyRef)}
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

// KeyScheme returns the scheme of a key reference that names a KMS key or
// another key service (awskms, k8s, ...), or "" for a key file and for
// the http(s):// and env:// references that cosign reads as key files.
func KeyScheme(keyRef string) string {
	scheme, _, ok := strings.Cut(keyRef, "://")
	if !ok || scheme == "http" || scheme == "https" || scheme == "env" {
		return ""
	}
	return scheme
}

// NoProviderError reports a key reference whose scheme has neither a KMS
// provider linked into the program nor a plugin on PATH.
type NoProviderError struct {
	Scheme string
}

func (e *NoProviderError) Error() string {
	// ociwf.dev/cmd has a plugin for each of these schemes; package
	// ociwf.dev/attest/kms links a provider for the KMS ones.
	plugin := cliplugin.PluginBinaryPrefix + e.Scheme
	switch e.Scheme {
	case "awskms", "gcpkms", "azurekms", "hashivault":
	case "k8s", "gitlab":
		return fmt.Sprintf("%s:// key references are served by the plugin %s, which is not on PATH (install it: go install ociwf.dev/cmd/%s@latest)", e.Scheme, plugin, plugin)
	default:
		return fmt.Sprintf("no KMS provider for %s:// is linked into this program and no plugin %s is on PATH (put a sigstore KMS plugin of that name on PATH)", e.Scheme, plugin)
	}
	return fmt.Sprintf("no KMS provider for %s:// is linked into this program (import ociwf.dev/attest/kms, or the provider's package under github.com/sigstore/sigstore/pkg/signature/kms) and no plugin %s is on PATH (install it: go install ociwf.dev/cmd/%s@latest)", e.Scheme, plugin, plugin)
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
