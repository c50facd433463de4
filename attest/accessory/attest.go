package accessory

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/cosign/v2/pkg/cosign/attestation"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/cosign/v2/pkg/types"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/dsse"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"

	"ociwf.dev/attest/internal/store"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/predicate"
)

// Duplicates says what Attest does when the subject already carries an
// attestation of the same predicate type.
type Duplicates int

const (
	// KeepExisting writes nothing when the same key already attested the
	// same predicate type for the subject, which makes reruns idempotent.
	// Keyless signers cannot recognise their own attestations and append.
	KeepExisting Duplicates = iota
	// Append always adds the new attestation (cosign attest's default).
	Append
	// Replace removes every stored attestation of the predicate type and
	// stores the new one (cosign attest --replace). Tag scheme only.
	Replace
)

// Predicate type names that AttestOptions.Type accepts besides URIs; they
// are cosign's --type values.
const (
	TypeSLSAProvenance1 = predicate.SLSAProvenance
	TypeCycloneDX       = predicate.CycloneDX
	TypeCustom          = predicate.Custom
)

// AttestOptions describe one attestation.
type AttestOptions struct {
	// Type is a cosign predicate type name (TypeSLSAProvenance1,
	// TypeCycloneDX, TypeCustom, "spdxjson", "vuln", ...) or a predicate
	// type URI; empty means TypeCustom.
	Type string
	// Predicate is the predicate document (JSON; free text for TypeCustom).
	Predicate []byte
	// Duplicates chooses between keeping, appending and replacing.
	Duplicates Duplicates
	// Now stamps TypeCustom predicates; nil means time.Now.
	Now func() time.Time
	// Recorded, when set, is asked about each statement the signer has
	// stored for the subject already, read right before the write and
	// again after a write refused for a racing one: true means that
	// statement records what this one would (a racing writer's lifecycle
	// event for the same transition, say), and this one is not written
	// (its Result says Existing). Legacy storage only.
	Recorded func(predicateType string, predicate []byte) bool
}

// PredicateType returns the URI for a cosign predicate type name or URI.
func PredicateType(t string) (string, error) {
	if t == "" {
		t = TypeCustom
	}
	uri, err := predicate.URI(t)
	if err != nil {
		return "", fmt.Errorf("predicate type %q: want slsaprovenance1, cyclonedx, custom, another cosign type or a URI: %w", t, errdef.ErrInvalid)
	}
	return uri, nil
}

// Attest wraps opts.Predicate in an in-toto statement about subj's manifest
// digest, signs it as a DSSE envelope and stores it where stock cosign
// looks for attestations.
func (r *Registry) Attest(ctx context.Context, s *Signer, subj Subject, opts AttestOptions) (*Result, error) {
	res, err := r.AttestAll(ctx, s, subj, []AttestOptions{opts}, nil)
	if err != nil {
		return nil, err
	}
	return res[0], nil
}

// AttestAll is Attest for several predicates with a single write: one
// update of the .att manifest, or one referrer holding every new
// attestation. It returns one Result per predicate, in order. pre, from
// Prefetch of the same subject, saves reading what is already there; nil
// reads it.
func (r *Registry) AttestAll(ctx context.Context, s *Signer, subj Subject, all []AttestOptions, pre *Stored) ([]*Result, error) {
	return r.attestAll(ctx, s, subj, all, pre, appendRounds)
}

// attestAll is AttestAll; retry allows one more round after a refused
// write.
func (r *Registry) attestAll(ctx context.Context, s *Signer, subj Subject, all []AttestOptions, pre *Stored, rounds int) ([]*Result, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	todo, err := r.statements(d, subj, all)
	if err != nil {
		return nil, err
	}
	var legacy, bundles []*Result
	if r.format.bundle() {
		// Bundles first: a refused legacy write retries from here, and
		// bundles already written are then found and kept.
		if bundles, err = r.attestBundles(ctx, s, subj, all, todo, pre); err != nil {
			return nil, err
		}
	}
	if r.format.legacy() {
		if legacy, err = r.attestLegacy(ctx, s, subj, d, all, todo, pre, rounds); err != nil {
			return nil, err
		}
	}
	return merge(legacy, bundles), nil
}

// merge combines the results of the formats written: a statement is
// Existing only when it existed in every format.
func merge(legacy, bundles []*Result) []*Result {
	switch {
	case legacy == nil:
		return bundles
	case bundles == nil:
		return legacy
	}
	for i, b := range bundles {
		legacy[i].Existing = legacy[i].Existing && b.Existing
	}
	return legacy
}

// pendingStatement is an in-toto statement to sign.
type pendingStatement struct {
	uri, typ string
	payload  []byte
}

// statements builds the in-toto statement of each attestation.
func (r *Registry) statements(d name.Digest, subj Subject, all []AttestOptions) ([]pendingStatement, error) {
	todo := make([]pendingStatement, len(all))
	for i, opts := range all {
		uri, err := PredicateType(opts.Type)
		if err != nil {
			return nil, err
		}
		if opts.Duplicates == Replace && r.mode == Referrers {
			return nil, fmt.Errorf("replacing attestations needs the tag scheme; referrers can only be added: %w", errdef.ErrInvalid)
		}
		typ := opts.Type
		if typ == "" {
			typ = TypeCustom
		}
		stmt, err := attestation.GenerateStatement(attestation.GenerateOpts{
			Predicate: bytes.NewReader(opts.Predicate),
			Type:      typ,
			Digest:    subj.Digest.Encoded(),
			Repo:      d.Repository.String(),
			Time:      opts.Now,
		})
		if err != nil {
			return nil, fmt.Errorf("%s predicate: %v: %w", typ, err, errdef.ErrInvalid)
		}
		payload, err := json.Marshal(stmt)
		if err != nil {
			return nil, fmt.Errorf("statement: %w", err)
		}
		todo[i] = pendingStatement{uri: uri, typ: typ, payload: payload}
	}
	return todo, nil
}

// attestLegacy stores the statements as DSSE attestation layers in r's
// Mode.
func (r *Registry) attestLegacy(ctx context.Context, s *Signer, subj Subject, d name.Digest, all []AttestOptions, todo []pendingStatement, pre *Stored, rounds int) ([]*Result, error) {
	ropts := r.st.Options(ctx, d)
	stored, err := r.stored(ctx, d, ropts, store.AttestationKind, pre)
	if err != nil {
		return nil, err
	}
	results := make([]*Result, len(all))
	var fresh []oci.Signature
	replace := map[string]*Result{} // predicate type -> the result counting replacements
	for i, p := range todo {
		results[i] = &Result{Subject: subj, Mode: r.mode}
		if all[i].Duplicates == KeepExisting && s.keyed && r.attested(s, stored.OK, subj, p.uri) {
			r.log.Debug("already attested", "subject", subj.String(), "predicateType", p.uri)
			results[i].Existing = true
			continue
		}
		if all[i].Recorded != nil && s.keyed && r.recordedAlready(s, stored.OK, subj, all[i].Recorded) {
			r.log.Debug("recorded already", "subject", subj.String(), "predicateType", p.uri)
			results[i].Existing = true
			continue
		}
		if all[i].Duplicates == Replace {
			replace[p.uri] = results[i]
		}
		att, err := r.signStatement(ctx, s, p.payload, p.uri)
		if err != nil {
			return nil, fmt.Errorf("sign %s attestation for %s: %w", p.typ, subj, err)
		}
		fresh = append(fresh, att)
	}
	if len(fresh) == 0 {
		return results, nil
	}

	switch r.mode {
	case Referrers:
		if err := r.st.Write(d, ropts, store.AttestationKind, fresh); err != nil {
			return nil, storeError("attestation", subj, err)
		}
	default:
		// Every stored entry is kept, those that do not parse too, except
		// the attestations replaced.
		keep := stored.All[:0:0]
		for _, old := range stored.All {
			if len(replace) > 0 {
				if st, err := statementOf(old); err == nil && replace[st.PredicateType] != nil {
					replace[st.PredicateType].Replaced++
					continue
				}
			}
			keep = append(keep, old)
		}
		if err := r.st.Write(d, ropts, store.AttestationKind, append(keep, fresh...)); err != nil {
			if rounds > 1 && store.Refused(err) && len(replace) == 0 {
				// As in sign: read what is stored now and try again.
				if err := againAfter(ctx, appendRounds-rounds); err != nil {
					return nil, err
				}
				return r.attestLegacy(ctx, s, subj, d, all, todo, nil, rounds-1)
			}
			return nil, storeError("attestation", subj, err)
		}
	}
	r.log.Debug("attested", "subject", subj.String(), "count", len(fresh), "mode", r.mode.String())
	return results, nil
}

// attested reports whether s's key already attested predicate type uri for
// subj among stored.
func (r *Registry) attested(s *Signer, stored []oci.Signature, subj Subject, uri string) bool {
	for _, att := range stored {
		if st, err := verifyEnvelope(s.sv, att); err == nil && st.PredicateType == uri && coversDigest(st, subj) {
			return true
		}
	}
	return false
}

// recordedAlready reports whether recorded says yes to one of s's stored
// statements about subj.
func (r *Registry) recordedAlready(s *Signer, stored []oci.Signature, subj Subject, recorded func(string, []byte) bool) bool {
	for _, att := range stored {
		st, err := verifyEnvelope(s.sv, att)
		if err != nil || !coversDigest(st, subj) {
			continue
		}
		raw, err := json.Marshal(st.Predicate)
		if err == nil && recorded(st.PredicateType, raw) {
			return true
		}
	}
	return false
}

// signStatement signs an in-toto statement as a DSSE envelope, records it
// in the transparency log if s says so, and returns the attestation layer.
func (r *Registry) signStatement(ctx context.Context, s *Signer, payload []byte, uri string) (oci.Signature, error) {
	env, err := dsse.WrapSigner(s.sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	sopts := []static.Option{
		static.WithLayerMediaType(types.DssePayloadType),
		static.WithAnnotations(map[string]string{"predicateType": uri}),
	}
	if s.cert != nil {
		sopts = append(sopts, static.WithCertChain(s.cert, s.chain))
	}
	if s.rekor != nil {
		pem, err := s.bytes(ctx)
		if err != nil {
			return nil, fmt.Errorf("signer identity: %w", err)
		}
		entry, err := cosign.TLogUploadDSSEEnvelope(ctx, s.rekor, env, pem)
		if err != nil {
			return nil, fmt.Errorf("upload attestation to the transparency log: %w", err)
		}
		sopts = append(sopts, static.WithBundle(cbundle.EntryToBundle(entry)))
	}
	return static.NewAttestation(env, sopts...)
}

// envelope is a DSSE envelope as cosign stores it.
type envelope struct {
	PayloadType string `json:"payloadType"`
	Payload     string `json:"payload"`
}

// statementOf decodes the in-toto statement inside a stored attestation
// without checking its signature.
func statementOf(att oci.Signature) (*in_toto.Statement, error) {
	raw, err := att.Payload()
	if err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		return nil, fmt.Errorf("attestation is not a DSSE envelope: %w", err)
	}
	if env.PayloadType != types.IntotoPayloadType {
		return nil, fmt.Errorf("attestation payload type %q, want %q", env.PayloadType, types.IntotoPayloadType)
	}
	body, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return nil, fmt.Errorf("attestation payload: %w", err)
	}
	var st in_toto.Statement
	if err := json.Unmarshal(body, &st); err != nil {
		return nil, fmt.Errorf("attestation statement: %w", err)
	}
	return &st, nil
}

// verifyEnvelope checks att's DSSE signature with v and returns its
// statement.
func verifyEnvelope(v signature.Verifier, att oci.Signature) (*in_toto.Statement, error) {
	raw, err := att.Payload()
	if err != nil {
		return nil, err
	}
	if err := dsse.WrapVerifier(v).VerifySignature(bytes.NewReader(raw), nil); err != nil {
		return nil, err
	}
	return statementOf(att)
}

// coversDigest reports whether a statement names subj's digest.
func coversDigest(st *in_toto.Statement, subj Subject) bool {
	want := subj.Digest.Encoded()
	for _, s := range st.Subject {
		if h, ok := s.Digest[subj.Digest.Algorithm().String()]; ok && h == want {
			return true
		}
	}
	return false
}
