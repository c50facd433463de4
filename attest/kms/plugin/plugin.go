// Package plugin serves a key through sigstore's KMS plugin protocol
// (github.com/sigstore/sigstore/pkg/signature/kms/cliplugin): a program
// named sigstore-kms-SCHEME on PATH answers for key references
// SCHEME://..., one method call per run. A client that links no provider
// for SCHEME (the ociwf CLI links none, to start fast) runs the plugin
// instead, and so does stock cosign.
//
// ociwf.dev/cmd has one such program per scheme that ociwf and cosign
// accept: sigstore-kms-awskms, -gcpkms, -azurekms and -hashivault (each
// with its sigstore KMS provider linked), and sigstore-kms-k8s and
// -gitlab (cosign's Kubernetes secret and GitLab variable loaders).
package plugin

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin/common"
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin/handler"
)

// Load loads the key a plugin serves: ref is the whole key reference,
// SCHEME://..., and hash the hash function the client asked for.
type Load func(ctx context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error)

// Providers loads ref with the KMS providers linked into the program.
func Providers(ctx context.Context, ref string, hash crypto.Hash) (kms.SignerVerifier, error) {
	return kms.Get(ctx, ref, hash)
}

// Serve answers one plugin call for scheme: args are the program's
// arguments (os.Args: the protocol version, then the call as JSON), stdin
// the message to sign or verify. The answer, an error included, goes to
// stdout as the protocol wants it; the error is also returned.
func Serve(ctx context.Context, scheme string, args []string, stdin io.Reader, stdout io.Writer, load Load) error {
	err := serve(ctx, scheme, args, stdin, stdout, load)
	var answered errAnswered
	if err != nil && !errors.As(err, &answered) {
		_ = handler.WriteErrorResponse(stdout, err)
	}
	return err
}

func serve(ctx context.Context, scheme string, args []string, stdin io.Reader, stdout io.Writer, load Load) error {
	pa, err := handler.GetPluginArgs(args)
	if err != nil {
		return fmt.Errorf("sigstore-kms-%s: %w (run by a sigstore KMS plugin client, such as ociwf or cosign, for %s:// key references)", scheme, err, scheme)
	}
	if pa.InitOptions == nil || pa.MethodArgs == nil {
		return fmt.Errorf("sigstore-kms-%s: the call names no key or no method", scheme)
	}
	if v := pa.InitOptions.ProtocolVersion; v != common.ProtocolVersion || (len(args) > 1 && args[1] != common.ProtocolVersion) {
		return fmt.Errorf("sigstore-kms-%s: protocol %q, this plugin speaks %q", scheme, v, common.ProtocolVersion)
	}
	if d := pa.InitOptions.CtxDeadline; d != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, *d)
		defer cancel()
	}
	sv, err := load(ctx, scheme+"://"+pa.InitOptions.KeyResourceID, pa.InitOptions.HashFunc)
	if err != nil {
		return err
	}
	// Dispatch writes the answer, or the method's error, itself.
	_, err = handler.Dispatch(stdout, stdin, pa, sv)
	if err != nil {
		return errAnswered{err}
	}
	return nil
}

// errAnswered is an error Dispatch has already written to stdout.
type errAnswered struct{ error }

func (e errAnswered) Unwrap() error { return e.error }

// Main is a plugin program's main function: it serves the call on os.Args
// and exits 1 if it failed (the protocol ignores the status; the error
// went to stdout and stderr).
func Main(scheme string, load Load) {
	if err := Serve(context.Background(), scheme, os.Args, os.Stdin, os.Stdout, load); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// KeyOnly serves sv, a key that is only a signer and verifier (a cosign
// key read from a Kubernetes secret, say), as a plugin key: the protocol's
// key creation and algorithm choice are refused or fixed.
func KeyOnly(sv signature.SignerVerifier, algorithm string) kms.SignerVerifier {
	return keyOnly{sv, algorithm}
}

type keyOnly struct {
	signature.SignerVerifier
	algorithm string
}

func (k keyOnly) CreateKey(context.Context, string) (crypto.PublicKey, error) {
	return nil, errors.New("this plugin serves an existing key; it cannot create one")
}

func (k keyOnly) CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error) {
	return nil, nil, errors.New("a crypto.Signer is not served over the plugin protocol")
}

func (k keyOnly) SupportedAlgorithms() []string { return []string{k.algorithm} }
func (k keyOnly) DefaultAlgorithm() string      { return k.algorithm }
