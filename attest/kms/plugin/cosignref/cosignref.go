// Package cosignref serves the key references cosign reads itself rather
// than through a KMS provider, k8s:// secrets and gitlab:// variables, as
// plugin keys (package ociwf.dev/attest/kms/plugin), with cosign's own
// loaders. It links Kubernetes client-go and the GitLab client, which is
// why those loaders live in plugin programs and not in ociwf.
package cosignref

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"

	"ociwf.dev/attest/kms/plugin"
)

// Load is a plugin.Load for ref through cosign's loaders. The public key
// (for verifying) is read as cosign reads it for verification, from
// cosign.pub alone; the private key only for signing, decrypted with
// $COSIGN_PASSWORD.
func Load(_ context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error) {
	return plugin.KeyOnly(&lazy{ref: ref, hash: hash}, "ecdsa-p256-sha256"), nil
}

// lazy loads the verifier or the signer on first use.
type lazy struct {
	ref  string
	hash crypto.Hash

	once   sync.Once
	v      signature.Verifier
	verr   error
	sonce  sync.Once
	signer signature.SignerVerifier
	serr   error
}

func (l *lazy) verifier() (signature.Verifier, error) {
	l.once.Do(func() {
		l.v, l.verr = sigs.PublicKeyFromKeyRefWithHashAlgo(context.Background(), l.ref, l.hash)
	})
	return l.v, l.verr
}

func (l *lazy) signerVerifier() (signature.SignerVerifier, error) {
	l.sonce.Do(func() {
		pass := func(bool) ([]byte, error) {
			pw, ok := os.LookupEnv("COSIGN_PASSWORD")
			if !ok {
				return nil, errors.New("set COSIGN_PASSWORD to the key's password")
			}
			return []byte(pw), nil
		}
		l.signer, l.serr = sigs.SignerVerifierFromKeyRef(context.Background(), l.ref, cosign.PassFunc(pass), nil)
	})
	return l.signer, l.serr
}

func (l *lazy) PublicKey(opts ...signature.PublicKeyOption) (crypto.PublicKey, error) {
	v, err := l.verifier()
	if err != nil {
		return nil, fmt.Errorf("read the public key of %s: %w", l.ref, err)
	}
	return v.PublicKey(opts...)
}

func (l *lazy) VerifySignature(sig, message io.Reader, opts ...signature.VerifyOption) error {
	v, err := l.verifier()
	if err != nil {
		return fmt.Errorf("read the public key of %s: %w", l.ref, err)
	}
	return v.VerifySignature(sig, message, opts...)
}

func (l *lazy) SignMessage(message io.Reader, opts ...signature.SignOption) ([]byte, error) {
	s, err := l.signerVerifier()
	if err != nil {
		return nil, fmt.Errorf("read the private key of %s: %w", l.ref, err)
	}
	return s.SignMessage(message, opts...)
}

var _ signature.SignerVerifier = (*lazy)(nil)
