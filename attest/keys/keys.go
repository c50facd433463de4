// Package keys loads signing keys as cosign's sign command does, built on
// cosign's and sigstore's libraries rather than cosign's command-line
// packages: cosign private key files (or env:// and http(s):// references
// to one), KMS URIs, and keyless signing with a Fulcio certificate.
//
// KMS URIs go through github.com/sigstore/sigstore/pkg/signature/kms: a
// provider linked into the program (package ociwf.dev/attest/kms links
// them all) or, failing that, a sigstore KMS plugin on PATH
// (sigstore-kms-<scheme>, see package ociwf.dev/attest/kms/plugin).
// k8s:// and gitlab:// references are served by the plugins
// sigstore-kms-k8s and sigstore-kms-gitlab.
package keys

import (
	"bytes"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"github.com/sigstore/cosign/v2/pkg/blob"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/providers"
	"github.com/sigstore/fulcio/pkg/api"
	rekor "github.com/sigstore/rekor/pkg/client"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/oauthflow"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"
	"golang.org/x/term"

	"ociwf.dev/attest/accessory"

	// The ambient OIDC credential providers cosign enables by default,
	// except Google's (it links the Google API client).
	_ "github.com/sigstore/cosign/v2/pkg/providers/buildkite"
	_ "github.com/sigstore/cosign/v2/pkg/providers/envvar"
	_ "github.com/sigstore/cosign/v2/pkg/providers/filesystem"
	_ "github.com/sigstore/cosign/v2/pkg/providers/github"
	_ "github.com/sigstore/cosign/v2/pkg/providers/spiffe"
)

// userAgent names this library to Fulcio and Rekor.
const userAgent = "ociwf"

// LoadSigner loads the signer opts describes, as cosign's sign command
// loads it. A failure to load the key matches accessory.ErrKey.
func LoadSigner(ctx context.Context, opts accessory.SignerOptions) (*accessory.Signer, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	pass := opts.Pass
	if pass == nil {
		pass = func(bool) ([]byte, error) { return nil, nil }
	}
	var (
		k   accessory.SignerKey
		err error
	)
	switch {
	case opts.Key != "":
		k, err = signerFromKeyRef(ctx, opts.Cert, opts.CertChain, opts.Key, pass)
		if err != nil {
			return nil, keyError(opts.Key, err)
		}
		if strings.Contains(opts.Key, "://") {
			// KMS signers connect lazily; ask for the public key now so that
			// a missing credential fails before anything is pushed.
			if _, err := k.PublicKey(); err != nil {
				closeKey(k)
				return nil, keyError(opts.Key, err)
			}
		}
	default:
		fulcioURL := orDefault(opts.FulcioURL, accessory.DefaultFulcioURL)
		k, err = keylessSigner(ctx, opts, fulcioURL)
		if err != nil {
			return nil, fmt.Errorf("keyless signing: get a certificate from %s: %w", fulcioURL, err)
		}
	}
	if opts.TlogUpload {
		rekorURL := orDefault(opts.RekorURL, accessory.DefaultRekorURL)
		rc, err := rekor.GetRekorClient(rekorURL, rekor.WithUserAgent(userAgent))
		if err != nil {
			closeKey(k)
			return nil, fmt.Errorf("transparency log %s: %w", rekorURL, err)
		}
		k.Rekor = rc
	}
	return accessory.NewSigner(k), nil
}

func closeKey(k accessory.SignerKey) {
	if k.Close != nil {
		k.Close()
	}
}

// signerFromKeyRef is cosign's signerFromKeyRef (cli/sign) for key files
// and KMS URIs: the key, and the certificate and chain given for it.
func signerFromKeyRef(ctx context.Context, certPath, chainPath, keyRef string, pass accessory.PassFunc) (accessory.SignerKey, error) {
	sv, err := signerVerifierFromKeyRef(ctx, keyRef, pass)
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("reading key: %w", err)
	}
	k := accessory.SignerKey{SignerVerifier: sv}
	var leaf *x509.Certificate
	if certPath != "" {
		raw, err := os.ReadFile(certPath)
		if err != nil {
			return k, fmt.Errorf("read certificate: %w", err)
		}
		// Allow both DER and PEM encoding.
		if bytes.HasPrefix(raw, []byte("-----")) {
			block, _ := pem.Decode(raw)
			if block == nil || block.Type != "CERTIFICATE" {
				return k, fmt.Errorf("supplied PEM file is not a certificate: %s", certPath)
			}
			raw = block.Bytes
		}
		if leaf, err = x509.ParseCertificate(raw); err != nil {
			return k, fmt.Errorf("parse x509 certificate: %w", err)
		}
		pk, err := sv.PublicKey()
		if err != nil {
			return k, fmt.Errorf("get public key: %w", err)
		}
		if cryptoutils.EqualKeys(pk, leaf.PublicKey) != nil {
			return k, errors.New("public key in certificate does not match the provided public key")
		}
		if k.Cert, err = cryptoutils.MarshalCertificateToPEM(leaf); err != nil {
			return k, fmt.Errorf("marshaling certificate to PEM: %w", err)
		}
	}
	if chainPath == "" {
		return k, nil
	}
	if k.Cert == nil {
		return k, errors.New("no leaf certificate found or provided while specifying chain")
	}
	raw, err := os.ReadFile(chainPath)
	if err != nil {
		return k, fmt.Errorf("reading certificate chain from path: %w", err)
	}
	chain, err := cryptoutils.UnmarshalCertificatesFromPEM(raw)
	if err != nil {
		return k, fmt.Errorf("loading certificate chain: %w", err)
	}
	if len(chain) == 0 {
		return k, errors.New("no certificates in certificate chain")
	}
	roots, subs := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(chain[len(chain)-1])
	for _, c := range chain[:len(chain)-1] {
		subs.AddCert(c)
	}
	if _, err := cosign.TrustedCert(leaf, roots, subs); err != nil {
		return k, fmt.Errorf("unable to validate certificate chain: %w", err)
	}
	k.Chain = raw
	return k, nil
}

// signerVerifierFromKeyRef is cosign's SignerVerifierFromKeyRef
// (pkg/signature) without the Kubernetes, GitLab and PKCS#11 clients: a KMS
// URI goes to a linked provider or a plugin, anything else is a key file.
func signerVerifierFromKeyRef(ctx context.Context, keyRef string, pass accessory.PassFunc) (signature.SignerVerifier, error) {
	if strings.HasPrefix(keyRef, "pkcs11:") {
		return nil, errors.New("pkcs11 key references are not supported")
	}
	if strings.Contains(keyRef, "://") {
		sv, err := kms.Get(ctx, keyRef, crypto.SHA256)
		if err == nil {
			return sv, nil
		}
		var notFound *kms.ProviderNotFoundError
		if !errors.As(err, &notFound) {
			return nil, fmt.Errorf("kms get: %w", err)
		}
		if scheme := accessory.KeyScheme(keyRef); scheme != "" {
			return nil, &accessory.NoProviderError{Scheme: scheme}
		}
	}
	raw, err := blob.LoadFileOrURL(keyRef)
	if err != nil {
		return nil, err
	}
	pw, err := pass(false)
	if err != nil {
		return nil, err
	}
	return cosign.LoadPrivateKey(raw, pw, nil)
}

// keylessSigner is cosign's KeylessSigner (cli/sign, cli/fulcio): an
// ephemeral key certified by Fulcio for the caller's OIDC identity, the
// certificate's SCT checked against the CT log keys cosign trusts.
func keylessSigner(ctx context.Context, opts accessory.SignerOptions, fulcioURL string) (accessory.SignerKey, error) {
	priv, err := cosign.GeneratePrivateKey()
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("generating cert: %w", err)
	}
	sv, err := signature.LoadECDSASignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return accessory.SignerKey{}, err
	}
	u, err := url.Parse(fulcioURL)
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("creating Fulcio client: %w", err)
	}
	fc := api.NewClient(u, api.WithUserAgent(userAgent))
	tok, err := readIDToken(ctx, opts.IDToken)
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("getting key from Fulcio: reading id token: %w", err)
	}
	resp, err := getCert(sv, tok, orDefault(opts.OIDCIssuer, accessory.DefaultOIDCIssuerURL), orDefault(opts.OIDCClientID, "sigstore"), fc)
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("getting key from Fulcio: retrieving cert: %w", err)
	}
	pubs, err := cosign.GetCTLogPubs(ctx)
	if err != nil {
		return accessory.SignerKey{}, fmt.Errorf("getting key from Fulcio: getting CTFE public keys: %w", err)
	}
	if err := cosign.VerifySCT(ctx, resp.CertPEM, resp.ChainPEM, resp.SCT, pubs); err != nil {
		return accessory.SignerKey{}, fmt.Errorf("getting key from Fulcio: verifying SCT: %w", err)
	}
	return accessory.SignerKey{SignerVerifier: sv, Cert: resp.CertPEM, Chain: resp.ChainPEM, Ephemeral: true}, nil
}

// readIDToken is cosign's ReadIDToken: the token itself, a file holding
// it, or one from the ambient credential providers.
func readIDToken(ctx context.Context, tokOrPath string) (string, error) {
	tok := tokOrPath
	if _, err := jwt.ParseSigned(tokOrPath, []jose.SignatureAlgorithm{"RS256"}); err != nil && tokOrPath != "" {
		raw, err := os.ReadFile(tokOrPath)
		if err != nil {
			return "", fmt.Errorf("getting id token: %w", err)
		}
		tok = string(raw)
	}
	if tok == "" && providers.Enabled(ctx) {
		t, err := providers.Provide(ctx, "sigstore")
		if err != nil {
			return "", fmt.Errorf("fetching ambient OIDC credentials: %w", err)
		}
		tok = t
	}
	return tok, nil
}

// privacyStatement is what cosign shows before an interactive sign-in.
const privacyStatement = `
	The sigstore service, hosted by sigstore a Series of LF Projects, LLC, is provided pursuant to the Hosted Project Tools Terms of Use, available at https://lfprojects.org/policies/hosted-project-tools-terms-of-use/.
	Note that if your submission includes personal data associated with this signed artifact, it will be part of an immutable record.
	This may include the email address associated with the account with which you authenticate your contractual Agreement.
	This information will be used for signing this artifact and will be stored in public transparency logs and cannot be removed later, and is subject to the Immutable Record notice at https://lfprojects.org/policies/hosted-project-tools-immutable-records/.
`

// getCert is cosign's GetCert with its choice of OAuth flow: the token
// given, the device flow without a terminal, the browser flow with one.
func getCert(sv signature.SignerVerifier, idToken, issuer, clientID string, fc api.LegacyClient) (*api.CertificateResponse, error) {
	var getter oauthflow.TokenGetter
	switch {
	case idToken != "":
		getter = &oauthflow.StaticTokenGetter{RawToken: idToken}
	case !term.IsTerminal(0):
		fmt.Fprintln(os.Stderr, "Non-interactive mode detected, using device flow.")
		getter = oauthflow.NewDeviceFlowTokenGetterForIssuer(issuer)
	default:
		fmt.Fprint(os.Stderr, privacyStatement+"\n")
		getter = oauthflow.DefaultIDTokenGetter
	}
	tok, err := oauthflow.OIDConnect(issuer, clientID, "", "", getter)
	if err != nil {
		return nil, err
	}
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, err
	}
	pubPEM, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, err
	}
	proof, err := sv.SignMessage(strings.NewReader(tok.Subject))
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(os.Stderr, "Retrieving signed certificate...")
	return fc.SigningCert(api.CertificateRequest{PublicKey: api.Key{Content: pubPEM}, SignedEmailAddress: proof}, tok.RawString)
}

// keyError explains a key loading failure and what to do about it.
func keyError(key string, err error) error {
	var np *accessory.NoProviderError
	switch {
	case wrongPassword(err):
		return fmt.Errorf("load key %s: wrong password (set COSIGN_PASSWORD to the key's password): %w", key, accessory.ErrKey)
	case errors.As(err, &np):
		return fmt.Errorf("load key %s: %v: %w", key, err, accessory.ErrKey)
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
