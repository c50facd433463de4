package attest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	cremote "github.com/sigstore/cosign/v2/pkg/cosign/remote"
	"github.com/sigstore/cosign/v2/pkg/oci"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	sigopts "github.com/sigstore/sigstore/pkg/signature/options"
	sigpayload "github.com/sigstore/sigstore/pkg/signature/payload"
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

// Result reports what Sign or Attest did.
type Result struct {
	// Subject is what was signed or attested.
	Subject Subject
	// Mode is where the signature or attestation is stored.
	Mode Mode
	// Existing is true when an equivalent signature or attestation by the
	// same key was already stored, so nothing was written.
	Existing bool
	// Replaced counts attestations removed by AttestOptions.Replace.
	Replaced int
}

// Sign signs subj's manifest digest in cosign's simple-signing format and
// stores the signature where stock cosign looks for it. Signing is
// idempotent for a key: when the same key already signed the same payload
// (digest and annotations), nothing new is written.
func (r *Registry) Sign(ctx context.Context, s *Signer, subj Subject, opts SignOptions) (*Result, error) {
	return r.sign(ctx, s, subj, opts, true)
}

// sign is Sign; retry allows one more round after a refused write.
func (r *Registry) sign(ctx context.Context, s *Signer, subj Subject, opts SignOptions, retry bool) (*Result, error) {
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
	if s.sv.Cert != nil {
		sopts = append(sopts, static.WithCertChain(s.sv.Cert, s.sv.Chain))
	}
	res := &Result{Subject: subj, Mode: r.mode}
	ropts := r.options(ctx, d)
	stored, err := r.stored(ctx, d, ropts, sigKind, opts.Stored)
	if err != nil {
		return nil, err
	}
	existing, err := asSignatures(stored.ok)
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
		pem, err := s.sv.Bytes(ctx)
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
		se, err := holding(d, []oci.Signature{newSig}, nil)
		if err != nil {
			return nil, err
		}
		if err := ociremote.WriteSignaturesExperimentalOCI(d, se, ropts...); err != nil {
			return nil, r.settle(storeError("signature", subj, err))
		}
	default:
		// Every stored entry is kept, those that do not parse too: the
		// write only appends.
		se, err := holding(d, append(stored.all, newSig), nil)
		if err != nil {
			return nil, err
		}
		if err := ociremote.WriteSignatures(d.Repository, se, ropts...); err != nil {
			if retry && refused(err) {
				// An append-only registry refuses a manifest that lacks a
				// signature stored since the read, such as a write an
				// interrupted earlier run left in flight: read again.
				opts.Stored = nil
				return r.sign(ctx, s, subj, opts, false)
			}
			return nil, r.settle(storeError("signature", subj, err))
		}
	}
	r.log.Debug("signed", "subject", subj.String(), "mode", r.mode.String())
	return res, nil
}

// refused reports a write the registry denied (HTTP 403).
func refused(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusForbidden
}

// storeError explains a refused write.
func storeError(what string, subj Subject, err error) error {
	return fmt.Errorf("store %s for %s: %w (check push permission on the repository; nothing was tagged)", what, subj, err)
}
