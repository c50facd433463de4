package accessory

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/sigstore/pkg/signature"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/attest/internal/store"
	"ociwf.dev/ociwf/errdef"
)

// Found is every signature and attestation stored for a subject, under
// both schemes, before any of them is checked.
type Found struct {
	Subject      Subject
	Signatures   []FoundSignature
	Attestations []FoundAttestation
	// Bundles are the sigstore bundles stored as referrers, signatures
	// and attestations alike (FoundBundle.Verify tells which).
	Bundles []FoundBundle
	// Malformed are the stored entries that do not parse as cosign's,
	// skipped.
	Malformed []Malformed
}

// FoundSignature is one stored cosign signature, not yet checked.
type FoundSignature struct {
	// Mode is where it was found.
	Mode Mode
	// Payload is the signed simple-signing payload, decoded; nil when the
	// payload is not one.
	Payload *sigpayload.SimpleContainerImage
	sig     oci.Signature
}

// FoundAttestation is one stored DSSE attestation, not yet checked.
type FoundAttestation struct {
	// Mode is where it was found.
	Mode Mode
	sig  oci.Signature
	// st decodes the statement once for Statement and Verify, which a
	// verification calls more than once per attestation; nil decodes on
	// every call.
	st *decodedStatement
}

// decodedStatement is an attestation's statement, decoded on first use.
type decodedStatement struct {
	once sync.Once
	st   *in_toto.Statement
	err  error
}

// statement returns a's statement, decoded from the very payload bytes
// Verify checks the signature of. The copy returned is the caller's: its
// fields and subject list may be changed; the predicate is shared.
func (a FoundAttestation) statement() (*in_toto.Statement, error) {
	if a.st == nil {
		return statementOf(a.sig)
	}
	a.st.once.Do(func() { a.st.st, a.st.err = statementOf(a.sig) })
	if a.st.err != nil {
		return nil, a.st.err
	}
	st := *a.st.st
	st.Subject = slices.Clone(st.Subject)
	return &st, nil
}

// Find reads every signature and attestation of subj from both storage
// schemes: the cosign tags and one listing of the OCI 1.1 referrers, which
// also yields the sigstore bundles.
// Nothing is verified; see FoundSignature.Verify and FoundAttestation.Verify.
// Entries that do not parse as cosign's are skipped and listed in
// Found.Malformed.
func (r *Registry) Find(ctx context.Context, subj Subject) (*Found, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	ropts := r.st.Options(ctx, d)
	modes := []Mode{TagScheme, Referrers}
	got := make([][]store.Entries, len(modes))
	var g errgroup.Group
	for i, m := range modes {
		g.Go(func() (err error) {
			got[i], err = r.st.Read(ctx, d, ropts, store.Where{Tags: m == TagScheme, Referrers: m == Referrers}, store.SignatureKind, store.AttestationKind, store.BundleKind)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	out := &Found{Subject: subj}
	for i, m := range modes {
		got := got[i]
		for _, s := range got[0].OK {
			fs := FoundSignature{Mode: m, sig: s}
			if raw, err := s.Payload(); err == nil {
				var p sigpayload.SimpleContainerImage
				if json.Unmarshal(raw, &p) == nil {
					fs.Payload = &p
				}
			}
			out.Signatures = append(out.Signatures, fs)
		}
		for _, a := range got[1].OK {
			out.Attestations = append(out.Attestations, FoundAttestation{Mode: m, sig: a, st: &decodedStatement{}})
		}
		out.Bundles = append(out.Bundles, foundBundles(got[2].Bundles)...)
		out.Malformed = slices.Concat(out.Malformed, got[0].Malformed, got[1].Malformed, got[2].Malformed)
	}
	return out, nil
}

// checkOpts are cosign's verification options for one key: the signature
// only, no claims (callers compare them to report precisely), and no
// transparency log (key-based signing does not upload by default).
func checkOpts(v signature.Verifier) *cosign.CheckOpts {
	return &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, IgnoreSCT: true}
}

// Verify checks the signature cryptographically with v through cosign's
// verifier. It does not compare the payload with any digest or
// repository: Payload holds what was signed.
func (s FoundSignature) Verify(ctx context.Context, v signature.Verifier) error {
	if s.Payload == nil {
		return fmt.Errorf("signature payload is not a cosign simple-signing payload: %w", errdef.ErrVerification)
	}
	if _, err := cosign.VerifyImageSignature(ctx, s.sig, v1.Hash{}, checkOpts(v)); err != nil {
		return fmt.Errorf("%w: %w", errdef.ErrVerification, err)
	}
	return nil
}

// Verify checks the attestation's DSSE signature with v through cosign's
// verifier and returns the signed in-toto statement. The statement's
// subject is not compared with anything.
func (a FoundAttestation) Verify(ctx context.Context, v signature.Verifier) (*in_toto.Statement, error) {
	set, err := store.Signatures([]oci.Signature{a.sig})
	if err != nil {
		return nil, err
	}
	if _, _, err := cosign.VerifyImageAttestation(ctx, set, v1.Hash{}, checkOpts(v)); err != nil {
		return nil, fmt.Errorf("%w: %w", errdef.ErrVerification, err)
	}
	return a.statement()
}

// Statement decodes the attestation's statement without checking its
// signature, for reporting what an unverifiable attestation claims.
func (a FoundAttestation) Statement() (*in_toto.Statement, error) { return a.statement() }

// Covers reports whether a statement names dgst among its subjects.
func Covers(st *in_toto.Statement, dgst digest.Digest) bool {
	return coversDigest(st, Subject{Digest: dgst})
}
