package verify

import (
	"encoding/json"
	"slices"
	"strings"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf/sbom"
)

// sbom binds the SBOM layer to the SBOM attestation and to the plan.
func (r *run) sbom() error {
	layer, err := jsoncanonicalizer.Transform(r.wf.SBOM)
	if err != nil {
		return r.rep.fail(CheckSBOM, "the SBOM layer is not JSON", "a CycloneDX JSON document", err.Error())
	}
	layerDigest := digest.FromBytes(layer)
	detail := "no SBOM attestation required or present"
	cdx, err := accessory.PredicateType(accessory.TypeCycloneDX)
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
