package verify

// Keyless signers: a sigstore bundle whose verification material is a
// Fulcio certificate, checked against a trust policy's keyless signer.
//
// The entry point, for whoever finds the bundles:
//
//	func VerifyKeyless(ctx context.Context, b *bundle.Bundle, d digest.Digest, s trust.Signer) (*KeylessResult, error)
//
// b is a parsed sigstore bundle (sigstore-go bundle.Bundle, as
// cosign's ociremote.Bundle returns it), d the digest of the manifest the
// bundle is about, s a signer of the scope with s.Keyless set (trust.Load
// has made its trusted root absolute and filled the defaults). The bundle
// is verified by sigstore-go against the signer's trusted_root.json: the
// certificate chain, the DSSE signature, the transparency log entries and
// timestamps the signer requires, the certificate identity (subject
// alternative name, OIDC issuer, claims), and that the statement lists d.
// The signer's notBefore/notAfter window is then checked at the earliest
// verified timestamp.
//
// A bundle that fails any of that returns a *KeylessError (errors.Is
// errdef.ErrVerification). A signer that is not keyless, or a trusted root
// that does not load, returns an error matching errdef.ErrInvalid. The
// caller still applies ociwf's own rules to KeylessResult.Statement: the
// predicate type, the signed identity, the M-of-N count over signer
// names.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	in_toto "github.com/in-toto/attestation/go/v1"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/trust"
)

// KeylessResult is a bundle verified for a keyless signer.
type KeylessResult struct {
	// Signer is the policy signer's name.
	Signer string
	// Certificate is what the verified signing certificate says: subject
	// alternative name, issuer and the other Fulcio extensions.
	Certificate certificate.Summary
	// Statement is the verified in-toto statement of the bundle's DSSE
	// envelope.
	Statement *in_toto.Statement
	// SignedAt is the earliest verified timestamp (transparency log or
	// timestamping authority): when the short-lived certificate was used.
	SignedAt time.Time
}

// KeylessError is a bundle that does not verify for a keyless signer.
type KeylessError struct {
	// Signer is the policy signer's name.
	Signer string
	// Err is why, as sigstore-go or the window check said it.
	Err error
}

func (e *KeylessError) Error() string {
	return fmt.Sprintf("keyless signer %q: %v", e.Signer, e.Err)
}

// Unwrap returns the cause.
func (e *KeylessError) Unwrap() error { return e.Err }

// Is makes every KeylessError match errdef.ErrVerification.
func (e *KeylessError) Is(target error) bool { return target == errdef.ErrVerification }

// VerifyKeyless verifies the sigstore bundle b about the manifest digest d
// for the keyless signer s; see the top of this file.
func VerifyKeyless(ctx context.Context, b *bundle.Bundle, d digest.Digest, s trust.Signer) (*KeylessResult, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k := s.Keyless
	if k == nil {
		return nil, fmt.Errorf("signer %q is not keyless: %w", s.Name, errdef.ErrInvalid)
	}
	if b == nil {
		return nil, fmt.Errorf("signer %q: no bundle: %w", s.Name, errdef.ErrInvalid)
	}
	if err := d.Validate(); err != nil || d.Algorithm() != digest.SHA256 {
		return nil, fmt.Errorf("signer %q: digest %q: want sha256: %w", s.Name, d, errdef.ErrInvalid)
	}
	tr, err := root.NewTrustedRootFromPath(k.TrustedRoot)
	if err != nil {
		return nil, fmt.Errorf("signer %q: trusted root %s: %w: %w", s.Name, k.TrustedRoot, err, errdef.ErrInvalid)
	}
	v, err := sgverify.NewVerifier(tr, keylessOptions(k)...)
	if err != nil {
		return nil, fmt.Errorf("signer %q: %w: %w", s.Name, err, errdef.ErrInvalid)
	}
	id, err := keylessIdentity(k)
	if err != nil {
		return nil, fmt.Errorf("signer %q: %w: %w", s.Name, err, errdef.ErrInvalid)
	}
	raw, err := hex.DecodeString(d.Encoded())
	if err != nil {
		return nil, fmt.Errorf("signer %q: %w: %w", s.Name, err, errdef.ErrInvalid)
	}
	res, err := v.Verify(b, sgverify.NewPolicy(sgverify.WithArtifactDigest("sha256", raw), sgverify.WithCertificateIdentity(id)))
	if err != nil {
		return nil, &KeylessError{Signer: s.Name, Err: err}
	}
	if res.Signature == nil || res.Signature.Certificate == nil || res.Statement == nil {
		return nil, &KeylessError{Signer: s.Name, Err: errors.New("the bundle is not a certificate-signed DSSE statement")}
	}
	out := &KeylessResult{Signer: s.Name, Certificate: *res.Signature.Certificate, Statement: res.Statement}
	for _, ts := range res.VerifiedTimestamps {
		if out.SignedAt.IsZero() || ts.Timestamp.Before(out.SignedAt) {
			out.SignedAt = ts.Timestamp
		}
	}
	if out.SignedAt.IsZero() {
		// Unreachable with the options keylessOptions builds (every
		// policy requires a verified time), kept as a guard.
		return nil, &KeylessError{Signer: s.Name, Err: errors.New("no verified timestamp")}
	}
	if !s.ValidAt(out.SignedAt) {
		return nil, &KeylessError{Signer: s.Name, Err: fmt.Errorf("signed at %s, outside the signer's validity window", out.SignedAt.UTC().Format(time.RFC3339))}
	}
	return out, nil
}

// keylessOptions are the sigstore-go verifier options for k: the
// transparency log entries it requires, the signed timestamps it requires,
// and otherwise one observer timestamp (a log entry's integrated time,
// trusted through its signed entry timestamp, or a signed timestamp).
func keylessOptions(k *trust.Keyless) []sgverify.VerifierOption {
	var opts []sgverify.VerifierOption
	if n := k.TLogThreshold(); n > 0 {
		opts = append(opts, sgverify.WithTransparencyLog(n))
	}
	if n := k.Timestamps.Signed; n > 0 {
		opts = append(opts, sgverify.WithSignedTimestamps(n))
	} else {
		opts = append(opts, sgverify.WithObserverTimestamps(1))
	}
	return opts
}

// keylessIdentity is the certificate identity k names.
func keylessIdentity(k *trust.Keyless) (sgverify.CertificateIdentity, error) {
	san, err := sgverify.NewSANMatcher(k.Identity, k.IdentityRegexp)
	if err != nil {
		return sgverify.CertificateIdentity{}, err
	}
	iss, err := sgverify.NewIssuerMatcher(k.Issuer, k.IssuerRegexp)
	if err != nil {
		return sgverify.CertificateIdentity{}, err
	}
	return sgverify.NewCertificateIdentity(san, iss, k.Claims)
}
