package accessory

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"time"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
	"oras.land/oras-go/v2/registry/remote/retry"

	"ociwf.dev/attest/internal/store"
)

// SignOptions tune Registry.Sign.
type SignOptions struct {
	// Annotations are signed with the payload (cosign's -a k=v). The
	// subject's tag is added as AnnotationTag.
	Annotations map[string]string
	// Stored, from Prefetch of the same subject, saves reading what is
	// already there.
	Stored *Stored
}

// Sign signs subj's manifest digest in cosign's simple-signing format and
// stores the signature where stock cosign looks for it. Signing is
// idempotent for a key: when the same key already signed the same payload
// (digest and annotations), nothing new is written.
//
// In FormatBundle or FormatBoth, the signature is (also) stored as a
// sigstore bundle: an in-toto statement about the digest, predicate type
// SignPredicateType, whose subject annotations carry opts.Annotations, the
// tag and AnnotationReference naming the repository.
func (r *Registry) Sign(ctx context.Context, s *Signer, subj Subject, opts SignOptions) (*Result, error) {
	var res *Result
	if r.format.bundle() {
		var err error
		if res, err = r.signBundle(ctx, s, subj, opts); err != nil {
			return nil, err
		}
	}
	if !r.format.legacy() {
		return res, nil
	}
	lres, err := r.sign(ctx, s, subj, opts, appendRounds)
	if err != nil {
		return nil, err
	}
	if res != nil {
		lres.Existing = lres.Existing && res.Existing
	}
	return lres, nil
}

// appendRounds bounds the rounds of read, append and write an append-only
// accessory tag gets against writers racing for it (20 publishers of one
// version, say): each refused round reads again after a growing, jittered
// wait.
const appendRounds = 10

// againAfter waits before round n+1 (20 ms doubling, jittered by half,
// at most 2 s), or returns ctx's error.
func againAfter(ctx context.Context, n int) error {
	t := time.NewTimer(min(retry.ExponentialBackoff(20*time.Millisecond, 2, 0.5)(n, nil), 2*time.Second))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// sign is Sign; rounds bounds the reads and writes a refused write gets.
func (r *Registry) sign(ctx context.Context, s *Signer, subj Subject, opts SignOptions, rounds int) (*Result, error) {
	d, err := r.digestRef(subj)
	if err != nil {
		return nil, err
	}
	ann := map[string]any{}
	for k, v := range opts.Annotations {
		ann[k] = v
	}
	if subj.Tag != "" {
		ann[AnnotationTag] = subj.Tag
	}
	if len(ann) == 0 {
		ann = nil
	}
	payload, err := (&sigpayload.Cosign{Image: d, Annotations: ann}).MarshalJSON()
	if err != nil {
		return nil, fmt.Errorf("signature payload: %w", err)
	}
	raw, err := s.sv.SignMessage(bytes.NewReader(payload), sigopts.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", subj, err)
	}
	var sopts []static.Option
	if s.cert != nil {
		sopts = append(sopts, static.WithCertChain(s.cert, s.chain))
	}
	res := &Result{Subject: subj, Mode: r.mode}
	ropts := r.st.Options(ctx, d)
	stored, err := r.stored(ctx, d, ropts, store.SignatureKind, opts.Stored)
	if err != nil {
		return nil, err
	}
	existing, err := store.Signatures(stored.OK)
	if err != nil {
		return nil, err
	}
	newSig, err := static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), sopts...)
	if err != nil {
		return nil, fmt.Errorf("signature layer: %w", err)
	}
	dd := cremote.NewDupeDetector(s.sv)
	if s.keyed {
		if dup, err := dd.Find(existing, newSig); err != nil {
			return nil, fmt.Errorf("compare with stored signatures: %w", err)
		} else if dup != nil {
			r.log.Debug("already signed", "subject", subj.String())
			res.Existing = true
			return res, nil
		}
	}
	// Only now, with nothing to skip, record the signature in the
	// transparency log, so that reruns do not pile up log entries.
	if s.rekor != nil {
		pem, err := s.bytes(ctx)
		if err != nil {
			return nil, fmt.Errorf("signer identity: %w", err)
		}
		h := sha256.New()
		h.Write(payload)
		entry, err := cosign.TLogUpload(ctx, s.rekor, raw, h, pem)
		if err != nil {
			return nil, fmt.Errorf("upload signature to the transparency log: %w", err)
		}
		sopts = append(sopts, static.WithBundle(cbundle.EntryToBundle(entry)))
		if newSig, err = static.NewSignature(payload, base64.StdEncoding.EncodeToString(raw), sopts...); err != nil {
			return nil, fmt.Errorf("signature layer: %w", err)
		}
	}
	switch r.mode {
	case Referrers:
		if err := r.st.Write(d, ropts, store.SignatureKind, []oci.Signature{newSig}); err != nil {
			return nil, storeError("signature", subj, err)
		}
	default:
		// Every stored entry is kept, those that do not parse too: the
		// write only appends.
		if err := r.st.Write(d, ropts, store.SignatureKind, append(stored.All, newSig)); err != nil {
			if rounds > 1 && store.Refused(err) {
				// An append-only registry refuses a manifest that lacks a
				// signature stored since the read: a racing writer's, or
				// a write an interrupted earlier run left in flight. Read
				// again (the racer may have stored this signer's already).
				if err := againAfter(ctx, appendRounds-rounds); err != nil {
					return nil, err
				}
				opts.Stored = nil
				return r.sign(ctx, s, subj, opts, rounds-1)
			}
			return nil, storeError("signature", subj, err)
		}
	}
	r.log.Debug("signed", "subject", subj.String(), "mode", r.mode.String())
	return res, nil
}
