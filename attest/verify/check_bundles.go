package verify

import (
	"context"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"ociwf.dev/attest/accessory"
)

// bundleCheckOpts are cosign's options for verifying a sigstore bundle by
// s: for a key signer, that key with no transparency log and no trusted
// root (accessory.KeyCheckOpts). Every bundle verification of the
// signatures and attestations checks takes its options from here.
// Keyless signers: see keyless.go.
func bundleCheckOpts(s signer) (*cosign.CheckOpts, error) {
	return accessory.KeyCheckOpts(s.v), nil
}

// checkedBundle is one stored bundle after trying every signer.
type checkedBundle struct {
	// by indexes the signer whose verification passed, or is -1.
	by int
	// st is what it signed: about this digest when other is false; about
	// other artifacts only when other is true (verified without a subject).
	st    *accessory.BundleStatement
	other bool
}

// isSignature reports a bundle verified as a signature (cosign's sign
// predicate type); an unverified one may be either and counts as one for
// the report.
func (c checkedBundle) isSignature() bool {
	return c.st == nil || c.st.PredicateType == accessory.SignPredicateType
}

// checkBundles verifies each stored bundle once per signer, in policy
// order, and keeps the result for both checks: a bundle is a signature or
// an attestation only by its verified statement's predicate type.
func (r *run) checkBundles(ctx context.Context, signers []signer) ([]checkedBundle, error) {
	if r.bundles != nil || len(r.found.Bundles) == 0 {
		return r.bundles, nil
	}
	opts := make([]*cosign.CheckOpts, len(signers))
	for i, s := range signers {
		co, err := bundleCheckOpts(s)
		if err != nil {
			return nil, err
		}
		opts[i] = co
	}
	out := make([]checkedBundle, len(r.found.Bundles))
	for j, b := range r.found.Bundles {
		out[j] = checkedBundle{by: -1}
		for i := range signers {
			if st, err := b.Verify(ctx, opts[i], r.subj.Digest); err == nil {
				out[j] = checkedBundle{by: i, st: st}
				break
			}
		}
		if out[j].by >= 0 {
			continue
		}
		// Not valid for this digest: is it a trusted signer's statement
		// about another artifact (replayed), or nobody's?
		for i := range signers {
			if st, err := b.Verify(ctx, opts[i], ""); err == nil {
				out[j] = checkedBundle{by: i, st: st, other: true}
				break
			}
		}
	}
	r.bundles = out
	return out, nil
}
