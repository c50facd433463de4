// Package predicate maps cosign's predicate type names (the values of
// `cosign attest --type`: slsaprovenance1, cyclonedx, custom, ...) to
// in-toto predicate type URIs. Trust policies list attestations by these
// names and attestations are stored under the URIs.
//
// The table is cosign's (cmd/cosign/cli/options.PredicateTypeMap), kept
// here so that verifying programs do not link cosign's command-line
// packages; a test compares the two.
package predicate

import (
	"fmt"
	"net/url"
	"sort"

	"github.com/in-toto/in-toto-golang/in_toto"
	slsa02 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v0.2"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
)

// Names of predicate types, as cosign spells them.
const (
	Custom         = "custom"
	SLSA           = "slsaprovenance"
	SLSA02         = "slsaprovenance02"
	SLSAProvenance = "slsaprovenance1"
	SPDX           = "spdx"
	SPDXJSON       = "spdxjson"
	CycloneDX      = "cyclonedx"
	Link           = "link"
	Vuln           = "vuln"
	OpenVEX        = "openvex"
)

// URIs that have no constant in in-toto-golang (cosign's own).
const (
	CustomURI  = "https://cosign.sigstore.dev/attestation/v1"
	VulnURI    = "https://cosign.sigstore.dev/attestation/vuln/v1"
	OpenVEXURI = "https://openvex.dev/ns"
)

// uris is cosign's name to URI table.
func uris() map[string]string {
	return map[string]string{
		Custom:         CustomURI,
		SLSA:           slsa02.PredicateSLSAProvenance,
		SLSA02:         slsa02.PredicateSLSAProvenance,
		SLSAProvenance: slsa1.PredicateSLSAProvenance,
		SPDX:           in_toto.PredicateSPDX,
		SPDXJSON:       in_toto.PredicateSPDX,
		CycloneDX:      in_toto.PredicateCycloneDX,
		Link:           in_toto.PredicateLinkV1,
		Vuln:           VulnURI,
		OpenVEX:        OpenVEXURI,
	}
}

// Table returns a copy of the name to URI table.
func Table() map[string]string { return uris() }

// Names returns the predicate type names, sorted.
func Names() []string {
	m := uris()
	out := make([]string, 0, len(m))
	for n := range m {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// URI returns the URI of a predicate type name, or t itself when t is a
// URI, as cosign's options.ParsePredicateType does.
func URI(t string) (string, error) {
	if uri, ok := uris()[t]; ok {
		return uri, nil
	}
	if _, err := url.ParseRequestURI(t); err != nil {
		return "", fmt.Errorf("invalid predicate type: %s", t)
	}
	return t, nil
}
