package accessory_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
)

// TestBundleReferrers writes bundle signatures and attestations on a
// registry with the referrers API and on stock Distribution (the
// fallback tag), reruns, and reads them back.
func TestBundleReferrers(t *testing.T) {
	ctx := context.Background()
	key, _ := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)
	hosts := map[string]string{"referrers API": registrytest.New(t), "fallback tag": registrytest.StartPlain(t, t.TempDir())}
	for name, host := range hosts {
		t.Run(name, func(t *testing.T) {
			o := attesttest.Opener(t)
			tg, subj := attesttest.Push(t, o, host+"/wf/b:1.4.0", "build-test-release.yaml")
			reg := accessory.NewRegistry(o, accessory.RegistryOptions{Format: accessory.FormatBundle})
			for run := range 2 {
				res, err := reg.Sign(ctx, s, subj, accessory.SignOptions{Annotations: map[string]string{"approved": "yes"}})
				if err != nil {
					t.Fatal(err)
				}
				if res.Existing != (run == 1) {
					t.Fatalf("run %d: existing %v", run, res.Existing)
				}
				atts, err := reg.AttestAll(ctx, s, subj, []accessory.AttestOptions{{Type: "https://example.com/review/v1", Predicate: []byte(`{"ok":true}`)}}, nil)
				if err != nil {
					t.Fatal(err)
				}
				if atts[0].Existing != (run == 1) {
					t.Fatalf("run %d: attestation existing %v", run, atts[0].Existing)
				}
			}
			found, err := reg.Find(ctx, subj)
			if err != nil {
				t.Fatal(err)
			}
			if len(found.Bundles) != 2 || len(found.Signatures) != 0 || len(found.Attestations) != 0 || len(found.Malformed) != 0 {
				t.Fatalf("found %d bundles, %d signatures, %d attestations, malformed %v", len(found.Bundles), len(found.Signatures), len(found.Attestations), found.Malformed)
			}
			types := map[string]bool{}
			for _, b := range found.Bundles {
				st, err := b.Verify(ctx, accessory.KeyCheckOpts(s.Verifier()), subj.Digest)
				if err != nil {
					t.Fatal(err)
				}
				types[st.PredicateType] = true
				if st.PredicateType == accessory.SignPredicateType &&
					(st.Annotations[accessory.AnnotationReference] != subj.Repository || st.Annotations[accessory.AnnotationTag] != "1.4.0" || st.Annotations["approved"] != "yes") {
					t.Errorf("signed annotations %v", st.Annotations)
				}
			}
			if !types[accessory.SignPredicateType] || !types["https://example.com/review/v1"] {
				t.Fatalf("predicate types %v", types)
			}
			if name != "fallback tag" {
				return
			}
			// The fallback index lists each bundle under the bundle
			// artifact type, with its annotations, as cosign v3 does.
			raw, err := content.FetchAll(ctx, tg.Storage, mustResolve(t, tg, "sha256-"+subj.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			var idx ocispec.Index
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			if len(idx.Manifests) != 2 {
				t.Fatalf("fallback index %s", raw)
			}
			for _, m := range idx.Manifests {
				if m.ArtifactType != "application/vnd.dev.sigstore.bundle.v0.3+json" || !strings.HasPrefix(m.Annotations["dev.sigstore.bundle.predicateType"], "https://") {
					t.Errorf("fallback entry %+v", m)
				}
			}
		})
	}
}

func mustResolve(t *testing.T, tg *target.Target, ref string) ocispec.Descriptor {
	t.Helper()
	d, err := tg.Storage.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return d
}
