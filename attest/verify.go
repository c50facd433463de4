package attest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	sigs "github.com/sigstore/cosign/v2/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature"

	"ociwf.dev/ociwf/errdef"
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

// VerifyOptions say what must hold.
type VerifyOptions struct {
	// Verifier checks signatures; required. Key-based only for now: every
	// signature must be made by this key.
	Verifier signature.Verifier
	// Types lists predicate types (names or URIs, as AttestOptions.Type)
	// that must each have at least one valid attestation.
	Types []string
	// Tag is the tag the subject was resolved from, if any. When valid
	// signatures record tags (AnnotationTag) and none records Tag, the tag
	// was moved onto content signed for another version, and Verify fails.
	Tag string
	// RequireTag also fails when no valid signature records any tag
	// (signatures made without one, such as plain cosign sign).
	RequireTag bool
}

// VerifiedSignature is a signature that checked out.
type VerifiedSignature struct {
	Mode        Mode           `json:"mode"`
	Annotations map[string]any `json:"annotations,omitempty"`
}

// VerifiedAttestation is an attestation that checked out.
type VerifiedAttestation struct {
	Mode          Mode   `json:"mode"`
	PredicateType string `json:"predicateType"`
	// Statement is the in-toto statement JSON.
	Statement json.RawMessage `json:"statement"`
}

// Verification is what Verify found valid.
type Verification struct {
	Subject      Subject               `json:"-"`
	Signatures   []VerifiedSignature   `json:"signatures"`
	Attestations []VerifiedAttestation `json:"attestations,omitempty"`
	// TagSigned reports that a valid signature records VerifyOptions.Tag.
	TagSigned bool `json:"tagSigned"`
	// Malformed are the stored entries that do not parse as cosign's;
	// they were skipped.
	Malformed []Malformed `json:"malformed,omitempty"`
}

// Verify checks subj's signatures and attestations, stored under either
// scheme, with cosign's verification code (tlog entries are not required:
// key-based signing does not upload by default). It fails with an error
// matching errdef.ErrVerification unless at least one signature is valid,
// every type in opts.Types has a valid attestation and opts.Tag (if set) is
// signed.
func (r *Registry) Verify(ctx context.Context, subj Subject, opts VerifyOptions) (*Verification, error) {
	if opts.Verifier == nil {
		return nil, fmt.Errorf("verify: no public key: %w", ErrKey)
	}
	found, err := r.Find(ctx, subj)
	if err != nil {
		return nil, err
	}
	out := &Verification{Subject: subj, Malformed: found.Malformed}
	var failures []error
	for _, s := range found.Signatures {
		if err := s.Verify(ctx, opts.Verifier); err != nil {
			failures = append(failures, fmt.Errorf("%s signature: %w", s.Mode, err))
			continue
		}
		if got := s.Payload.Critical.Image.DockerManifestDigest; got != subj.Digest.String() {
			failures = append(failures, fmt.Errorf("%s signature is for %s", s.Mode, got))
			continue
		}
		out.Signatures = append(out.Signatures, VerifiedSignature{Mode: s.Mode, Annotations: s.Payload.Optional})
	}
	for _, a := range found.Attestations {
		st, err := a.Verify(ctx, opts.Verifier)
		if err != nil {
			failures = append(failures, fmt.Errorf("%s attestation: %w", a.Mode, err))
			continue
		}
		if !Covers(st, subj.Digest) {
			failures = append(failures, fmt.Errorf("%s %s attestation is about another subject", a.Mode, st.PredicateType))
			continue
		}
		raw, err := json.Marshal(st)
		if err != nil {
			return nil, fmt.Errorf("encode statement: %w", err)
		}
		out.Attestations = append(out.Attestations, VerifiedAttestation{Mode: a.Mode, PredicateType: st.PredicateType, Statement: raw})
	}

	if len(out.Signatures) == 0 {
		return out, verificationError(subj, "no valid signature", failures)
	}
	if opts.Tag != "" {
		var signed []string
		for _, s := range out.Signatures {
			if t, ok := s.Annotations[AnnotationTag].(string); ok {
				signed = append(signed, t)
			}
		}
		switch {
		case slices.Contains(signed, opts.Tag):
			out.TagSigned = true
		case len(signed) > 0:
			return out, verificationError(subj, fmt.Sprintf("tag %q is not the signed tag %q of this digest: the tag was moved", opts.Tag, signed), nil)
		case opts.RequireTag:
			return out, verificationError(subj, fmt.Sprintf("no valid signature records tag %q (sign with the tag, or verify by digest)", opts.Tag), nil)
		}
	}
	for _, t := range opts.Types {
		uri, err := PredicateType(t)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(out.Attestations, func(a VerifiedAttestation) bool { return a.PredicateType == uri }) {
			return out, verificationError(subj, "no valid "+uri+" attestation", failures)
		}
	}
	return out, nil
}

func verificationError(subj Subject, what string, failures []error) error {
	err := fmt.Errorf("verify %s: %s: %w", subj, what, errdef.ErrVerification)
	if len(failures) > 0 {
		err = fmt.Errorf("%w; rejected: %w", err, errors.Join(failures...))
	}
	return err
}
