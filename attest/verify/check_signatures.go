package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/policy/trust"
)

// rejection is why a signature or attestation did not count. Higher ranks
// are more telling: a trusted key that signed the wrong thing says more
// than a key nobody trusts.
type rejection struct {
	rank                     int
	detail, expected, actual string
}

const (
	rankUntrusted = iota
	rankWindow
	rankIdentity
	rankSubject
)

// keep remembers the most telling rejection.
func keep(best *rejection, r rejection) *rejection {
	if best == nil || r.rank > best.rank {
		return &r
	}
	return best
}

func signerNames(ss []signer) string {
	names := make([]string, len(ss))
	for i, s := range ss {
		names[i] = s.Name
	}
	return strings.Join(names, ", ")
}

func window(s trust.Signer) string {
	from, to := "any time", "any time"
	if s.NotBefore != nil {
		from = s.NotBefore.UTC().Format(time.RFC3339)
	}
	if s.NotAfter != nil {
		to = s.NotAfter.UTC().Format(time.RFC3339)
	}
	return "signing within " + from + " .. " + to
}

// signatures counts the distinct trusted signers with a valid signature
// that names this manifest and an identity the scope accepts, made while
// their key was valid.
func (r *run) signatures(ctx context.Context, signers []signer) error {
	now := r.v.opts.Now()
	repo := r.subj.Repository
	want := r.scope.SignedReference(repo)
	accepted := map[int]bool{} // by index into signers
	var best *rejection
	bundles, err := r.checkBundles(ctx, signers)
	if err != nil {
		return err
	}
	total := len(r.found.Signatures)
	for _, b := range bundles {
		if b.isSignature() {
			total++
		}
	}
	for _, s := range r.found.Signatures {
		var by *signer
		byIndex := -1
		for i := range signers {
			if signers[i].v != nil && s.Verify(ctx, signers[i].v) == nil {
				by, byIndex = &signers[i], i
				break
			}
		}
		if by == nil {
			best = keep(best, rejection{rankUntrusted, "no signature is made by a key trusted for " + repo,
				"a signature by " + signerNames(signers), fmt.Sprintf("%d signature(s), all by untrusted keys", total)})
			continue
		}
		p := s.Payload
		if got := p.Critical.Image.DockerManifestDigest; got != r.subj.Digest.String() {
			best = keep(best, rejection{rankSubject, "the signature by " + by.Name + " was made for another artifact (replayed)",
				"docker-manifest-digest " + r.subj.Digest.String(), "docker-manifest-digest " + got})
			continue
		}
		if got := p.Critical.Identity.DockerReference; !r.scope.AcceptsIdentity(repo, got) {
			rule := string(r.scope.SignedIdentity.Type)
			if rule == "" {
				rule = string(trust.Exact)
			}
			best = keep(best, rejection{rankIdentity, "the signature by " + by.Name + " names another repository (replayed across repositories; signedIdentity " + rule + ")",
				"docker-reference " + want, "docker-reference " + got})
			continue
		}
		if !by.ValidAt(now) {
			best = keep(best, rejection{rankWindow, "the key of signer " + by.Name + " is outside its validity window (no trusted signing time: checked at verification time)",
				window(by.Signer), "verification at " + now.UTC().Format(time.RFC3339)})
			continue
		}
		accepted[byIndex] = true
		if t, ok := p.Optional[accessory.AnnotationTag].(string); ok && !slices.Contains(r.signedTags, t) {
			r.signedTags = append(r.signedTags, t)
		}
	}
	for _, b := range bundles {
		if !b.isSignature() {
			continue
		}
		rj := r.bundleSignature(b, signers, now, total)
		if rj != nil {
			best = keep(best, *rj)
			continue
		}
		accepted[b.by] = true
		if t, ok := b.st.Annotations[accessory.AnnotationTag]; ok && !slices.Contains(r.signedTags, t) {
			r.signedTags = append(r.signedTags, t)
		}
	}
	threshold := max(1, r.scope.Threshold)
	names := make([]string, 0, len(accepted))
	for i, s := range signers {
		if accepted[i] {
			names = append(names, s.Name)
		}
	}
	r.rep.Signers = names
	r.rep.SignedTags = r.signedTags
	if len(names) >= threshold {
		r.rep.pass(CheckSignatures, "%d of %d signature(s) valid, by trusted signer(s) %s (threshold %d), naming %s",
			len(names), total, strings.Join(names, ", "), threshold, want)
		return nil
	}
	switch {
	case total == 0:
		return r.rep.fail(CheckSignatures, "the artifact is not signed", "a signature by "+signerNames(signers), "no signature stored (cosign tag, referrers or sigstore bundle)")
	case len(names) == 0 && best != nil:
		return r.rep.fail(CheckSignatures, best.detail, best.expected, best.actual)
	}
	return r.rep.fail(CheckSignatures, "too few distinct trusted signers",
		fmt.Sprintf("%d of %s", threshold, signerNames(signers)), fmt.Sprintf("%d (%s)", len(names), strings.Join(names, ", ")))
}

// bundleSignature checks a bundle signature as signatures checks a legacy
// one; nil means it counts for its signer. total is the number of
// signatures found, for the report.
func (r *run) bundleSignature(b checkedBundle, signers []signer, now time.Time, total int) *rejection {
	repo := r.subj.Repository
	if b.by < 0 {
		return &rejection{rankUntrusted, "no signature is made by a key trusted for " + repo,
			"a signature by " + signerNames(signers), fmt.Sprintf("%d signature(s), all by untrusted keys", total)}
	}
	by := signers[b.by]
	if b.other || b.st.Subjects != 1 {
		return &rejection{rankSubject, "the bundle signature by " + by.Name + " was made for another artifact (replayed)",
			"a statement about " + r.subj.Digest.String() + " alone", fmt.Sprintf("a statement about %d subject(s), %s", b.st.Subjects, subjects(b.st.Statement))}
	}
	rule := string(r.scope.SignedIdentity.Type)
	if rule == "" {
		rule = string(trust.Exact)
	}
	got, named := b.st.Annotations[accessory.AnnotationReference]
	switch {
	case !named && r.scope.SignedIdentity.Type != trust.DigestOnly:
		return &rejection{rankIdentity, "the bundle signature by " + by.Name + " binds only the digest, not the repository (signedIdentity " + rule + "; digestOnly accepts it)",
			accessory.AnnotationReference + " " + r.scope.SignedReference(repo), "no " + accessory.AnnotationReference + " annotation"}
	case named && !r.scope.AcceptsIdentity(repo, got):
		return &rejection{rankIdentity, "the bundle signature by " + by.Name + " names another repository (replayed across repositories; signedIdentity " + rule + ")",
			accessory.AnnotationReference + " " + r.scope.SignedReference(repo), accessory.AnnotationReference + " " + got}
	}
	if b.signedAt.IsZero() && !by.ValidAt(now) {
		return &rejection{rankWindow, "the key of signer " + by.Name + " is outside its validity window (no trusted signing time: checked at verification time)",
			window(by.Signer), "verification at " + now.UTC().Format(time.RFC3339)}
	}
	return nil
}
