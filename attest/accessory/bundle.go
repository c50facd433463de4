package accessory

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/google/go-containerregistry/pkg/name"
	intoto "github.com/in-toto/attestation/go/v1"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
	"github.com/sigstore/sigstore-go/pkg/root"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"ociwf.dev/attest/internal/store"
	"ociwf.dev/ociwf/errdef"
)

// Format says in which format Sign and Attest write signatures and
// attestations.
type Format int

const (
	// FormatLegacy writes cosign v2's formats: simple-signing signatures
	// and DSSE attestation layers, in the Registry's Mode. Both cosign v2
	// and v3 verify them offline with only --key.
	FormatLegacy Format = iota
	// FormatBundle writes sigstore bundles v0.3 as OCI 1.1 referrers,
	// cosign v3's default. cosign v2 verifies nothing offline on an
	// artifact carrying a bundle unless given --trusted-root.
	FormatBundle
	// FormatBoth writes both, signing once per statement.
	FormatBoth
)

// String returns "legacy", "bundle" or "both".
func (f Format) String() string {
	switch f {
	case FormatBundle:
		return "bundle"
	case FormatBoth:
		return "both"
	}
	return "legacy"
}

// MarshalText writes "legacy", "bundle" or "both".
func (f Format) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// ParseFormat reads "legacy", "bundle" or "both" (cosign's
// --new-bundle-format is "bundle"); "" is FormatLegacy.
func ParseFormat(s string) (Format, error) {
	switch s {
	case "", "legacy":
		return FormatLegacy, nil
	case "bundle":
		return FormatBundle, nil
	case "both":
		return FormatBoth, nil
	}
	return FormatLegacy, fmt.Errorf("signature format %q: want legacy, bundle or both: %w", s, errdef.ErrInvalid)
}

func (f Format) legacy() bool { return f != FormatBundle }
func (f Format) bundle() bool { return f != FormatLegacy }

// SignPredicateType is the predicate type of a signature stored as a
// sigstore bundle: an in-toto statement about the digest, as cosign v3
// signs.
const SignPredicateType = "https://sigstore.dev/cosign/sign/v1"

// AnnotationReference is the subject annotation of ociwf's bundle
// signatures that names the repository signed for. A sign bundle's
// statement binds only the digest; this signed annotation binds the
// repository the way a legacy signature's docker-reference does.
const AnnotationReference = "dev.ociwf.reference"

// FoundBundle is one stored sigstore bundle (a signature or an
// attestation; only its verified statement says which), not yet checked.
type FoundBundle struct {
	// Mode is where it was found: always Referrers.
	Mode Mode
	// Manifest is the referrer holding it.
	Manifest string
	b        *sgbundle.Bundle
}

// BundleStatement is what a verified bundle signed.
type BundleStatement struct {
	// PredicateType is the statement's; SignPredicateType for a signature.
	PredicateType string
	// Statement is the signed in-toto statement.
	Statement *in_toto.Statement
	// Subjects counts the statement's subjects.
	Subjects int
	// Annotations are the string annotations of the subject naming the
	// verified digest (for signatures: AnnotationReference,
	// AnnotationTag, cosign sign -a).
	Annotations map[string]string
}

// KeyCheckOpts are cosign's options for verifying a bundle with one key:
// no transparency log (key-based signing does not upload by default), no
// trusted root (a key needs none), so no trusted time either; callers
// check the key's validity window themselves.
func KeyCheckOpts(v signature.Verifier) *cosign.CheckOpts {
	return &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, IgnoreSCT: true, TrustedMaterial: &root.TrustedRoot{}}
}

// Verify checks the bundle with cosign's and sigstore-go's verifier under
// co (KeyCheckOpts for a key; certificate identities and a trusted root
// for keyless signers): the DSSE signature and a statement subject with
// dgst. It returns the signed statement. With an empty dgst no subject is
// required, for telling a trusted signature about another artifact from
// an untrusted one; the caller must then compare the subjects (Covers).
func (b FoundBundle) Verify(ctx context.Context, co *cosign.CheckOpts, dgst digest.Digest) (*BundleStatement, error) {
	art := sgverify.WithoutArtifactUnsafe()
	if dgst != "" {
		raw, err := hex.DecodeString(dgst.Encoded())
		if err != nil || dgst.Validate() != nil {
			return nil, fmt.Errorf("digest %q is not valid: %w", dgst, errdef.ErrInvalid)
		}
		art = sgverify.WithArtifactDigest(dgst.Algorithm().String(), raw)
	}
	res, err := cosign.VerifyNewBundle(ctx, co, art, b.b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errdef.ErrVerification, err)
	}
	if res.Statement == nil {
		return nil, fmt.Errorf("bundle holds no in-toto statement: %w", errdef.ErrVerification)
	}
	return NewBundleStatement(res.Statement, dgst)
}

// NewBundleStatement is what a verified bundle's in-toto statement signed,
// with the annotations of its subject naming dgst (none with an empty
// dgst): for a verifier that checked the bundle itself (a keyless
// signer's, through sigstore-go).
func NewBundleStatement(stmt *intoto.Statement, dgst digest.Digest) (*BundleStatement, error) {
	js, err := protojson.Marshal(stmt)
	if err != nil {
		return nil, fmt.Errorf("encode statement: %w", err)
	}
	var st in_toto.Statement
	if err := json.Unmarshal(js, &st); err != nil {
		return nil, fmt.Errorf("decode statement: %w", err)
	}
	out := &BundleStatement{PredicateType: stmt.GetPredicateType(), Statement: &st, Subjects: len(stmt.GetSubject()), Annotations: map[string]string{}}
	for _, s := range stmt.GetSubject() {
		if dgst == "" || s.GetDigest()[dgst.Algorithm().String()] != dgst.Encoded() {
			continue
		}
		for k, v := range s.GetAnnotations().AsMap() {
			if v, ok := v.(string); ok {
				out.Annotations[k] = v
			}
		}
		break
	}
	return out, nil
}

// Bundle is the parsed sigstore bundle, for verifiers that check it
// themselves.
func (b FoundBundle) Bundle() *sgbundle.Bundle { return b.b }

// foundBundles wraps the bundles read.
func foundBundles(got []store.Bundle) []FoundBundle {
	out := make([]FoundBundle, len(got))
	for i, b := range got {
		out[i] = FoundBundle{Mode: Referrers, Manifest: b.Manifest, b: b.Bundle}
	}
	return out
}

// storedBundles returns the bundles stored for d: from st when it was
// prefetched for the same digest with bundles, else read now.
func (r *Registry) storedBundles(ctx context.Context, d name.Digest, ropts []ociremote.Option, st *Stored) ([]FoundBundle, error) {
	if st != nil && st.withBundles && st.subj.Repository == d.Repository.Name() && st.subj.Digest.String() == d.DigestStr() {
		return foundBundles(st.bundles.Bundles), nil
	}
	got, err := r.st.Read(ctx, d, ropts, store.Where{Referrers: true}, store.BundleKind)
	if err != nil {
		return nil, err
	}
	return foundBundles(got[0].Bundles), nil
}

// bundled reports whether s's key already stored a bundle of predicate
// type uri about subj among found, and, for signatures (want non-nil),
// with the same annotations. The manifests' created annotation makes each
// write's manifest differ, so bundles are compared by what they sign.
func bundled(ctx context.Context, s *Signer, found []FoundBundle, subj Subject, uri string, want map[string]string) bool {
	for _, b := range found {
		st, err := b.Verify(ctx, KeyCheckOpts(s.sv), subj.Digest)
		if err != nil || st.PredicateType != uri {
			continue
		}
		if want == nil || equalAnnotations(st.Annotations, want) {
			return true
		}
	}
	return false
}

func equalAnnotations(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// signStatementBundle signs an in-toto statement as a DSSE envelope and
// wraps it in a sigstore bundle v0.3 with cosign's own code, compacted as
// cosign v3 writes it.
func signStatementBundle(ctx context.Context, s *Signer, stmt []byte) ([]byte, error) {
	if s.rekor != nil {
		return nil, fmt.Errorf("bundles with a transparency log entry are not written yet; use the legacy format for keyless signing: %w", errdef.ErrInvalid)
	}
	env, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(stmt), sigopts.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	pub, err := s.sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer public key: %w", err)
	}
	return compact(cbundle.MakeNewBundle(pub, nil, stmt, env, s.cert, nil))
}

// compact removes the whitespace protojson puts in at random, as cosign
// v3 writes its JSON.
func compact(raw []byte, err error) ([]byte, error) {
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	var c bytes.Buffer
	if err := json.Compact(&c, raw); err != nil {
		return nil, fmt.Errorf("compact: %w", err)
	}
	return c.Bytes(), nil
}

// signStatement returns the in-toto v1 statement of a bundle signature of
// d: the digest, with ann as its subject's annotations.
func signStatement(d name.Digest, ann map[string]string) ([]byte, error) {
	fields := map[string]any{}
	for k, v := range ann {
		fields[k] = v
	}
	sa, err := structpb.NewStruct(fields)
	if err != nil {
		return nil, fmt.Errorf("signature annotations: %w", err)
	}
	h, err := digest.Parse(d.DigestStr())
	if err != nil {
		return nil, fmt.Errorf("subject digest: %v: %w", err, errdef.ErrInvalid)
	}
	st := &intoto.Statement{
		Type:          intoto.StatementTypeUri,
		Subject:       []*intoto.ResourceDescriptor{{Digest: map[string]string{h.Algorithm().String(): h.Encoded()}, Annotations: sa}},
		PredicateType: SignPredicateType,
		Predicate:     &structpb.Struct{},
	}
	raw, err := compact(protojson.Marshal(st))
	if err != nil {
		return nil, fmt.Errorf("signature statement: %w", err)
	}
	return raw, nil
}

// signBundle stores a bundle signature of subj by s, unless s's key
// already stored one with the same annotations.
func (r *Registry) signBundle(ctx context.Context, s *Signer, subj Subject, opts SignOptions) (*Result, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	ann := map[string]string{AnnotationReference: d.Repository.Name()}
	for k, v := range opts.Annotations {
		ann[k] = v
	}
	if subj.Tag != "" {
		ann[AnnotationTag] = subj.Tag
	}
	res := &Result{Subject: subj, Mode: Referrers}
	ropts := r.st.Options(ctx, d)
	if s.keyed {
		found, err := r.storedBundles(ctx, d, ropts, opts.Stored)
		if err != nil {
			return nil, err
		}
		if bundled(ctx, s, found, subj, SignPredicateType, ann) {
			res.Existing = true
			return res, nil
		}
	}
	stmt, err := signStatement(d, ann)
	if err != nil {
		return nil, err
	}
	b, err := signStatementBundle(ctx, s, stmt)
	if err != nil {
		return nil, fmt.Errorf("sign %s bundle: %w", subj, err)
	}
	if err := r.st.WriteBundle(ctx, d, b, SignPredicateType); err != nil {
		return nil, storeError("signature bundle", subj, err)
	}
	r.log.Debug("signed", "subject", subj.String(), "format", "bundle")
	return res, nil
}

// attestBundles stores each statement as a bundle by s, skipping those
// s's key already stored (KeepExisting). Bundles are referrers: they can
// be added, not replaced.
func (r *Registry) attestBundles(ctx context.Context, s *Signer, subj Subject, all []AttestOptions, todo []pendingStatement, pre *Stored) ([]*Result, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	for _, opts := range all {
		if opts.Duplicates == Replace {
			return nil, fmt.Errorf("replacing attestations needs the legacy format in the tag scheme; bundles can only be added: %w", errdef.ErrInvalid)
		}
	}
	ropts := r.st.Options(ctx, d)
	var found []FoundBundle
	if s.keyed {
		if found, err = r.storedBundles(ctx, d, ropts, pre); err != nil {
			return nil, err
		}
	}
	results := make([]*Result, len(todo))
	for i, p := range todo {
		results[i] = &Result{Subject: subj, Mode: Referrers}
		if all[i].Duplicates == KeepExisting && s.keyed && bundled(ctx, s, found, subj, p.uri, nil) {
			results[i].Existing = true
			continue
		}
		b, err := signStatementBundle(ctx, s, p.payload)
		if err != nil {
			return nil, fmt.Errorf("sign %s attestation for %s: %w", p.typ, subj, err)
		}
		if err := r.st.WriteBundle(ctx, d, b, p.uri); err != nil {
			return nil, storeError("attestation bundle", subj, err)
		}
	}
	r.log.Debug("attested", "subject", subj.String(), "format", "bundle")
	return results, nil
}
