package verify

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/sbom"
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
	for _, s := range r.found.Signatures {
		var by *signer
		byIndex := -1
		for i := range signers {
			if s.Verify(ctx, signers[i].v) == nil {
				by, byIndex = &signers[i], i
				break
			}
		}
		if by == nil {
			best = keep(best, rejection{rankUntrusted, "no signature is made by a key trusted for " + repo,
				"a signature by " + signerNames(signers), fmt.Sprintf("%d signature(s), all by untrusted keys", len(r.found.Signatures))})
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
		if t, ok := p.Optional[attest.AnnotationTag].(string); ok && !slices.Contains(r.signedTags, t) {
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
			len(names), len(r.found.Signatures), strings.Join(names, ", "), threshold, want)
		return nil
	}
	switch {
	case len(r.found.Signatures) == 0:
		return r.rep.fail(CheckSignatures, "the artifact is not signed", "a signature by "+signerNames(signers), "no signature stored (cosign tag or referrers)")
	case len(names) == 0 && best != nil:
		return r.rep.fail(CheckSignatures, best.detail, best.expected, best.actual)
	}
	return r.rep.fail(CheckSignatures, "too few distinct trusted signers",
		fmt.Sprintf("%d of %s", threshold, signerNames(signers)), fmt.Sprintf("%d (%s)", len(names), strings.Join(names, ", ")))
}

// statement is an accepted attestation.
type statement struct {
	st     *in_toto.Statement
	signer string
	mode   attest.Mode
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
		if !attest.Covers(st, r.subj.Digest) {
			var subjects []string
			for _, s := range st.Subject {
				for alg, h := range s.Digest {
					subjects = append(subjects, alg+":"+h)
				}
			}
			rejected[pt] = keep(rejected[pt], rejection{rankSubject, "the attestation by " + by.Name + " is about another artifact",
				"subject " + r.subj.Digest.String(), "subject " + strings.Join(subjects, ", ")})
			continue
		}
		if !by.ValidAt(now) {
			rejected[pt] = keep(rejected[pt], rejection{rankWindow, "the key of signer " + by.Name + " is outside its validity window",
				window(by.Signer), "verification at " + now.UTC().Format(time.RFC3339)})
			continue
		}
		r.accepted[pt] = append(r.accepted[pt], statement{st: st, signer: by.Name, mode: a.Mode})
		raw, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("encode statement: %w", err)
		}
		r.rep.Attestations = append(r.rep.Attestations, Attestation{PredicateType: pt, Signer: by.Name, Mode: a.Mode, Statement: raw})
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
		uri, err := attest.PredicateType(n)
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

// sbom binds the SBOM layer to the SBOM attestation and to the plan.
func (r *run) sbom() error {
	layer, err := jsoncanonicalizer.Transform(r.wf.SBOM)
	if err != nil {
		return r.rep.fail(CheckSBOM, "the SBOM layer is not JSON", "a CycloneDX JSON document", err.Error())
	}
	layerDigest := digest.FromBytes(layer)
	detail := "no SBOM attestation required or present"
	cdx, err := attest.PredicateType(attest.TypeCycloneDX)
	if err != nil {
		return err
	}
	if atts := r.accepted[cdx]; len(atts) > 0 {
		var got []string
		bound := false
		for _, a := range atts {
			raw, err := json.Marshal(a.st.Predicate)
			if err == nil {
				raw, err = jsoncanonicalizer.Transform(raw)
			}
			if err != nil {
				got = append(got, err.Error())
				continue
			}
			d := digest.FromBytes(raw)
			if d == layerDigest {
				bound = true
				break
			}
			got = append(got, d.String())
		}
		if !bound {
			return r.rep.fail(CheckSBOM, "the SBOM layer differs from the SBOM attestation's predicate (digests of their canonical JSON)",
				layerDigest.String(), strings.Join(got, ", "))
		}
		detail = "layer equals the attested SBOM (" + layerDigest.String() + ", canonical JSON)"
	}
	var doc struct {
		Components []struct {
			PURL string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(r.wf.SBOM, &doc); err != nil {
		return r.rep.fail(CheckSBOM, "the SBOM layer does not decode", "a CycloneDX JSON document", err.Error())
	}
	var listed, want []string
	for _, c := range doc.Components {
		listed = append(listed, c.PURL)
	}
	for _, d := range r.wf.Plan.Dependencies {
		p, err := sbom.PURL(d)
		if err != nil {
			return r.rep.fail(CheckSBOM, "a plan dependency has no package URL", "pinned dependencies", err.Error())
		}
		want = append(want, p)
	}
	slices.Sort(listed)
	slices.Sort(want)
	want = slices.Compact(want)
	if !slices.Equal(listed, want) {
		return r.rep.fail(CheckSBOM, "the SBOM does not list exactly the plan's pinned dependencies", "["+strings.Join(want, " ")+"]", "["+strings.Join(listed, " ")+"]")
	}
	r.rep.pass(CheckSBOM, "%s; lists exactly the plan's %d pinned dependencies", detail, len(want))
	return nil
}

// resolution resolves references as the plan recorded them; references
// it does not list must carry their own digest.
type resolution map[string]plan.Dependency

func (rs resolution) Resolve(ctx context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	if d, ok := rs[string(kind)+" "+ref]; ok {
		return d, nil
	}
	return plan.Offline{}.Resolve(ctx, kind, ref)
}

// reproduce recompiles the DSL layer offline with the plan's own
// resolution and compares the result with the plan layer byte for byte.
func (r *run) reproduce(ctx context.Context) error {
	rs := resolution{}
	for _, d := range r.wf.Plan.Dependencies {
		rs[string(d.Kind)+" "+d.Ref] = d
	}
	want := r.wf.Manifest.Plan.Digest.String()
	// ociwf.Compile without the SBOM and config, which this check does
	// not compare.
	got, err := func() ([]byte, error) {
		wf, err := dsl.Parse(ociwf.SourceTitle, r.wf.Source)
		if err != nil {
			return nil, err
		}
		p, err := plan.Compile(ctx, wf, r.wf.Source, rs)
		if err != nil {
			return nil, err
		}
		return p.Encode()
	}()
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.rep.fail(CheckReproducibility, "the DSL layer does not compile with the plan's resolution", "plan "+want, err.Error())
	}
	if !bytes.Equal(got, r.wf.PlanJSON) {
		return r.rep.fail(CheckReproducibility, "the DSL layer recompiles to a different plan", "plan "+want, "plan "+digest.FromBytes(got).String())
	}
	r.rep.pass(CheckReproducibility, "the DSL layer recompiles offline to the identical plan %s", want)
	return nil
}

// lifecycle asks the lifecycle source, if any, and applies the scope's
// rules.
func (r *run) lifecycle(ctx context.Context) error {
	l := r.v.opts.Lifecycle
	if l == nil {
		r.rep.skip(CheckLifecycle, "no lifecycle source configured")
		return nil
	}
	state, err := l.State(ctx, r.subj)
	if err != nil {
		return fmt.Errorf("verify %s: lifecycle state: %w", r.subj, err)
	}
	switch r.scope.Lifecycle.For(state) {
	case trust.Deny:
		return r.rep.fail(CheckLifecycle, "trust policy "+r.scope.Name+" denies workflows in state "+state, "a state the policy allows", state)
	case trust.Warn:
		r.rep.warn(CheckLifecycle, "%s is %s (trust policy %s warns)", r.subj, state, r.scope.Name)
	default:
		r.rep.pass(CheckLifecycle, "state %s allowed", state)
	}
	return nil
}
