package accessory

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature"
)

// LoadVerifier loads a public key for verification through cosign's
// loader: a PEM public key file, a KMS URI, or a k8s:// secret.
func LoadVerifier(ctx context.Context, keyRef string) (signature.Verifier, error) {
	v, err := sigs.PublicKeyFromKeyRef(ctx, keyRef)
	if err != nil {
		return nil, fmt.Errorf("load public key %s: %w (want a PEM public key file or a KMS URI): %w", keyRef, err, ErrKey)
	}
	return v, nil
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
