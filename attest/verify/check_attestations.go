package verify

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/provenance"
)

// statement is an accepted attestation.
type statement struct {
	st     *in_toto.Statement
	signer string
	mode   accessory.Mode
}

// attestations accepts attestations by trusted keys about this manifest,
// requires each required predicate type, and checks the provenance.
func (r *run) attestations(ctx context.Context, signers []signer) error {
	now := r.v.opts.Now()
	r.accepted = map[string][]statement{}
	rejected := map[string]*rejection{} // by predicate type
	for _, a := range r.found.Attestations {
		var by *signer
		var st *in_toto.Statement
		for i := range signers {
			var err error
			if signers[i].v == nil {
				continue // keyless: bundles only
			}
			if st, err = a.Verify(ctx, signers[i].v); err == nil {
				by = &signers[i]
				break
			}
		}
		if by == nil {
			if claimed, err := a.Statement(); err == nil {
				rejected[claimed.PredicateType] = keep(rejected[claimed.PredicateType], rejection{rankUntrusted, "not signed by a trusted key",
					"a DSSE signature by " + signerNames(signers), "a signature by an untrusted key"})
			}
			continue
		}
		pt := st.PredicateType
		if !accessory.Covers(st, r.subj.Digest) {
			rejected[pt] = keep(rejected[pt], rejection{rankSubject, "the attestation by " + by.Name + " is about another artifact",
				"subject " + r.subj.Digest.String(), "subject " + subjects(st)})
			continue
		}
		if !by.ValidAt(now) {
			rejected[pt] = keep(rejected[pt], rejection{rankWindow, "the key of signer " + by.Name + " is outside its validity window",
				window(by.Signer), "verification at " + now.UTC().Format(time.RFC3339)})
			continue
		}
		if err := r.accept(st, by.Name, a.Mode); err != nil {
			return err
		}
	}
	bundles, err := r.checkBundles(ctx, signers)
	if err != nil {
		return err
	}
	for _, b := range bundles {
		if b.isSignature() {
			continue // or unverified: no trusted predicate type to file it under
		}
		by, pt := signers[b.by], b.st.PredicateType
		switch {
		case b.other:
			rejected[pt] = keep(rejected[pt], rejection{rankSubject, "the attestation bundle by " + by.Name + " is about another artifact",
				"subject " + r.subj.Digest.String(), "subject " + subjects(b.st.Statement)})
		case b.signedAt.IsZero() && !by.ValidAt(now):
			rejected[pt] = keep(rejected[pt], rejection{rankWindow, "the key of signer " + by.Name + " is outside its validity window",
				window(by.Signer), "verification at " + now.UTC().Format(time.RFC3339)})
		default:
			if err := r.accept(b.st.Statement, by.Name, accessory.Referrers); err != nil {
				return err
			}
		}
	}

	required, err := r.required()
	if err != nil {
		return err
	}
	for _, uri := range required {
		if len(r.accepted[uri]) > 0 {
			continue
		}
		want := "a " + uri + " attestation about " + r.subj.Digest.String() + " by " + signerNames(signers)
		if rj := rejected[uri]; rj != nil {
			return r.rep.fail(CheckAttestations, "no valid "+uri+" attestation: "+rj.detail, rj.expected, rj.actual)
		}
		return r.rep.fail(CheckAttestations, "required attestation missing", want, "none stored")
	}
	var checked []string
	if slices.Contains(required, provenance.PredicateType) {
		var first *rejection
		ok := false
		for _, s := range r.accepted[provenance.PredicateType] {
			rj := r.provenance(s.st)
			if rj == nil {
				ok = true
				break
			}
			if first == nil {
				first = rj
			}
		}
		if !ok {
			return r.rep.fail(CheckAttestations, first.detail, first.expected, first.actual)
		}
		checked = append(checked, "provenance lists the DSL layer and every plan dependency; builder and source allowed")
	}
	if len(required) == 0 {
		r.rep.pass(CheckAttestations, "none required by trust policy %q", r.scope.Name)
		return nil
	}
	r.rep.pass(CheckAttestations, "%s valid, by trusted keys, about %s%s", strings.Join(required, ", "), r.subj.Digest,
		strings.Join(append([]string{""}, checked...), "; "))
	return nil
}

// accept records an accepted attestation statement.
func (r *run) accept(st *in_toto.Statement, signer string, mode accessory.Mode) error {
	pt := st.PredicateType
	r.accepted[pt] = append(r.accepted[pt], statement{st: st, signer: signer, mode: mode})
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("encode statement: %w", err)
	}
	r.rep.Attestations = append(r.rep.Attestations, Attestation{PredicateType: pt, Signer: signer, Mode: mode, Statement: raw})
	return nil
}

// subjects lists a statement's subject digests.
func subjects(st *in_toto.Statement) string {
	var out []string
	for _, s := range st.Subject {
		for alg, h := range s.Digest {
			out = append(out, alg+":"+h)
		}
	}
	return strings.Join(out, ", ")
}

// required returns the predicate type URIs the scope requires; allowed
// builders or sources imply provenance.
func (r *run) required() ([]string, error) {
	var out []string
	req := r.scope.Require
	names := req.Attestations
	if len(req.Builders) > 0 || len(req.Sources) > 0 {
		names = append(slices.Clone(names), provenance.PredicateType)
	}
	for _, n := range names {
		uri, err := accessory.PredicateType(n)
		if err != nil {
			return nil, fmt.Errorf("trust policy %q: %w", r.scope.Name, err)
		}
		if !slices.Contains(out, uri) {
			out = append(out, uri)
		}
	}
	return out, nil
}

// provenance checks one provenance statement against the layers and the
// scope; nil means it holds.
func (r *run) provenance(st *in_toto.Statement) *rejection {
	raw, err := json.Marshal(st.Predicate)
	var pv *provenance.Provenance
	if err == nil {
		pv, err = provenance.Decode(raw)
	}
	if err != nil {
		return &rejection{detail: "the provenance predicate does not decode", expected: "a SLSA v1 provenance predicate", actual: err.Error()}
	}
	have := map[string]bool{}
	for _, d := range pv.BuildDefinition.ResolvedDependencies {
		for alg, h := range d.Digest {
			have[alg+":"+h] = true
		}
	}
	listed := fmt.Sprintf("resolvedDependencies with %d entries, without it", len(pv.BuildDefinition.ResolvedDependencies))
	if src := r.wf.Manifest.Source.Digest.String(); !have[src] {
		return &rejection{detail: "the provenance does not list the DSL layer among its resolvedDependencies",
			expected: "resolvedDependencies containing " + src, actual: listed}
	}
	for _, d := range r.wf.Plan.Dependencies {
		if !have[d.Digest] {
			return &rejection{detail: "the provenance does not list plan dependency " + d.Pinned,
				expected: "resolvedDependencies containing " + d.Digest, actual: listed}
		}
	}
	req := r.scope.Require
	if id := pv.RunDetails.Builder.ID; !req.BuilderAllowed(id) {
		return &rejection{detail: "the provenance's builder is not allowed", expected: "builder.id matching " + strings.Join(req.Builders, " or "), actual: "builder.id " + id}
	}
	if len(req.Sources) > 0 {
		uri := ""
		if s := pv.External.Source; s != nil {
			uri = s.URI
		}
		if !req.SourceAllowed(uri) {
			return &rejection{detail: "the provenance's source is not allowed", expected: "source uri matching " + strings.Join(req.Sources, " or "), actual: fmt.Sprintf("source uri %q", uri)}
		}
	}
	return nil
}
