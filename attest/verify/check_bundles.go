package verify

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/sigstore/cosign/v2/pkg/cosign"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf/errdef"
)

// bundleCheckOpts are cosign's options for verifying a sigstore bundle by
// s: for a key signer, that key with no transparency log and no trusted
// root (accessory.KeyCheckOpts). Keyless signers have none: their bundles
// go through VerifyKeyless (keyless.go).
func bundleCheckOpts(s signer) *cosign.CheckOpts {
	if s.v == nil {
		return nil
	}
	return accessory.KeyCheckOpts(s.v)
}

// verifyBundle verifies b as signed by s about dgst (any subject when
// dgst is empty, key signers only) and returns what it signed and, for a
// keyless signer, the verified signing time; co is bundleCheckOpts(s).
func verifyBundle(ctx context.Context, b accessory.FoundBundle, s signer, co *cosign.CheckOpts, dgst digest.Digest) (*accessory.BundleStatement, time.Time, error) {
	if co != nil {
		st, err := b.Verify(ctx, co, dgst)
		return st, time.Time{}, err
	}
	if dgst == "" {
		return nil, time.Time{}, fmt.Errorf("a keyless bundle is verified about this digest only: %w", errdef.ErrVerification)
	}
	res, err := VerifyKeyless(ctx, b.Bundle(), dgst, s.Signer)
	if err != nil {
		return nil, time.Time{}, err
	}
	st, err := accessory.NewBundleStatement(res.Statement, dgst)
	return st, res.SignedAt, err
}

// checkedBundle is one stored bundle after trying every signer.
type checkedBundle struct {
	// by indexes the signer whose verification passed, or is -1.
	by int
	// st is what it signed: about this digest when other is false; about
	// other artifacts only when other is true (verified without a subject).
	st    *accessory.BundleStatement
	other bool
	// signedAt is the verified signing time of a keyless signer's
	// bundle (its validity window was checked then); zero for a key's.
	signedAt time.Time
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
		opts[i] = bundleCheckOpts(s)
	}
	out := make([]checkedBundle, len(r.found.Bundles))
	for j, b := range r.found.Bundles {
		out[j] = checkedBundle{by: -1}
		for i := range signers {
			if st, at, err := verifyBundle(ctx, b, signers[i], opts[i], r.subj.Digest); err == nil {
				out[j] = checkedBundle{by: i, st: st, signedAt: at}
				break
			}
		}
		if out[j].by >= 0 {
			continue
		}
		// Not valid for this digest: is it a trusted signer's statement
		// about another artifact (replayed), or nobody's?
		for i := range signers {
			if opts[i] == nil {
				continue // keyless: about this digest only
			}
			if st, err := b.Verify(ctx, opts[i], ""); err == nil {
				out[j] = checkedBundle{by: i, st: st, other: true}
				break
			}
		}
	}
	r.bundles = out
	return out, nil
}
