package predicate_test

import (
	"maps"
	"testing"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"

	"ociwf.dev/policy/predicate"
)

// The table is cosign's: the same names with the same URIs.
func TestTableIsCosigns(t *testing.T) {
	if got := predicate.Table(); !maps.Equal(got, options.PredicateTypeMap) {
		t.Errorf("table differs from cosign's options.PredicateTypeMap:\n ours:   %v\n cosign: %v", got, options.PredicateTypeMap)
	}
	for name, want := range map[string]string{
		predicate.Custom: options.PredicateCustom, predicate.SLSA: options.PredicateSLSA, predicate.SLSA02: options.PredicateSLSA02,
		predicate.SLSAProvenance: options.PredicateSLSA1, predicate.SPDX: options.PredicateSPDX, predicate.SPDXJSON: options.PredicateSPDXJSON,
		predicate.CycloneDX: options.PredicateCycloneDX, predicate.Link: options.PredicateLink, predicate.Vuln: options.PredicateVuln,
		predicate.OpenVEX: options.PredicateOpenVEX,
	} {
		if name != want {
			t.Errorf("name %q, cosign's is %q", name, want)
		}
	}
}

// URI accepts and refuses what cosign's ParsePredicateType does.
func TestURIIsCosigns(t *testing.T) {
	for _, in := range append(predicate.Names(), "", "SLSAProvenance1", "not a uri", "https://example.com/predicate/v1", "urn:example:x", "/relative", "ftp://x", "://x", "https://") {
		want, werr := options.ParsePredicateType(in)
		got, err := predicate.URI(in)
		if got != want || (err == nil) != (werr == nil) {
			t.Errorf("URI(%q) = %q, %v; cosign: %q, %v", in, got, err, want, werr)
		}
	}
}
