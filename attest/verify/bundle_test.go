package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	cbundle "github.com/sigstore/cosign/v2/pkg/cosign/bundle"
	"github.com/sigstore/cosign/v2/pkg/types"
	sgdsse "github.com/sigstore/sigstore/pkg/signature/dsse"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/trust"
	"oras.land/oras-go/v2"
)

const (
	bundleType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	signType   = "https://sigstore.dev/cosign/sign/v1"
)

// signStatement is a cosign v3 sign statement about d with annotations.
func signStatement(t *testing.T, d digest.Digest, ann map[string]string) []byte {
	t.Helper()
	if ann == nil {
		ann = map[string]string{}
	}
	raw, err := json.Marshal(map[string]any{
		"_type":         "https://in-toto.io/Statement/v1",
		"subject":       []any{map[string]any{"digest": map[string]string{d.Algorithm().String(): d.Encoded()}, "annotations": ann}},
		"predicateType": signType,
		"predicate":     map[string]any{},
	})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// makeBundle signs stmt with the key file key into a v0.3 bundle, with
// cosign's code.
func makeBundle(t *testing.T, key string, stmt []byte) []byte {
	t.Helper()
	pem, err := os.ReadFile(key)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.LoadPrivateKey(pem, []byte(attesttest.Password), nil)
	if err != nil {
		t.Fatal(err)
	}
	env, err := sgdsse.WrapSigner(sv, types.IntotoPayloadType).SignMessage(bytes.NewReader(stmt))
	if err != nil {
		t.Fatal(err)
	}
	pub, err := sv.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	b, err := cbundle.MakeNewBundle(pub, nil, stmt, env, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestVerifyBundles(t *testing.T) {
	k := newKeys(t)
	for _, plain := range []bool{false, true} {
		for _, format := range []accessory.Format{accessory.FormatBundle, accessory.FormatBoth} {
			t.Run(fmt.Sprintf("plain=%v/%s", plain, format), func(t *testing.T) {
				f := newFixture(t, k)
				if plain {
					f = newPlainFixture(t, k)
				}
				repo := f.host + "/wf/release"
				subj := f.release(t, repo+":1.4.0", recipe{format: format})
				// A rerun writes nothing new.
				again := f.release(t, repo+":1.4.0", recipe{format: format})
				if again.Digest != subj.Digest {
					t.Fatal("rerun changed the digest")
				}
				found, err := accessory.NewRegistry(f.o, accessory.RegistryOptions{}).Find(context.Background(), subj)
				if err != nil {
					t.Fatal(err)
				}
				if len(found.Bundles) != 3 || len(found.Malformed) != 0 {
					t.Fatalf("%d bundles (want 3: signature, provenance, SBOM), malformed %v", len(found.Bundles), found.Malformed)
				}
				v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{RequireSignedTag: true})
				_, rep, err := v.Verify(context.Background(), repo+":1.4.0")
				if err != nil {
					t.Fatalf("%v\n%+v", err, rep)
				}
				if len(rep.Signers) != 1 {
					t.Fatalf("signers %v: one key in two formats counts once", rep.Signers)
				}
			})
		}
	}
}

// withBundle releases an unsigned-but-attested version and attaches a
// sign bundle made by key for the digest edit returns, with annotations.
func withBundle(key func(*fixture) string, about func(t *testing.T, f *fixture, repo string, subj accessory.Subject) digest.Digest, ann func(f *fixture) map[string]string) setup {
	return func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
		subj := f.release(t, repo+":1.4.0", recipe{format: accessory.FormatBundle})
		victim := f.release(t, repo+":1.5.0", recipe{build: rebuildVersion(t), unsigned: true})
		d := victim.Digest
		if about != nil {
			d = about(t, f, repo, subj)
		}
		var a map[string]string
		if ann != nil {
			a = ann(f)
		}
		f.attach(t, victim, bundleType, bundleType, makeBundle(t, key(f), signStatement(t, d, a)))
		return repo + ":1.5.0", trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
	}
}

func TestVerifyDetectsBundleTampering(t *testing.T) {
	k := newKeys(t)
	trusted := func(f *fixture) string { return f.key }
	named := func(r string) func(f *fixture) map[string]string {
		return func(f *fixture) map[string]string {
			return map[string]string{accessory.AnnotationReference: strings.ReplaceAll(r, "HOST", f.host)}
		}
	}
	cases := []struct {
		name      string
		setup     setup
		want      string
		malformed int
	}{
		{"bundle about another artifact", withBundle(trusted, func(t *testing.T, f *fixture, repo string, subj accessory.Subject) digest.Digest { return subj.Digest }, named("HOST/wf/release")),
			"was made for another artifact", 0},
		{"bundle by an untrusted key", withBundle(func(f *fixture) string { return f.otherKey }, nil, named("HOST/wf/release")),
			"untrusted keys", 0},
		{"bundle for another repository", withBundle(trusted, nil, named("HOST/wf/origin")),
			"dev.ociwf.reference HOST/wf/origin", 0},
		{"bundle binding only the digest under exact", withBundle(trusted, nil, nil),
			"binds only the digest", 0},
		{"truncated bundle", func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
			victim := f.release(t, repo+":1.5.0", recipe{unsigned: true})
			b := makeBundle(t, f.key, signStatement(t, victim.Digest, named("HOST/wf/release")(f)))
			f.attach(t, victim, bundleType, bundleType, b[:len(b)/2])
			return repo + ":1.5.0", trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
		}, "not signed", 1},
		{"bundle in a layer of another media type", func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
			victim := f.release(t, repo+":1.5.0", recipe{unsigned: true})
			b := makeBundle(t, f.key, signStatement(t, victim.Digest, named("HOST/wf/release")(f)))
			f.attach(t, victim, bundleType, "application/json", b)
			return repo + ":1.5.0", trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
		}, "not signed", 1},
		{"oversized bundle served", func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
			victim := f.release(t, repo+":1.5.0", recipe{unsigned: true})
			b := makeBundle(t, f.key, signStatement(t, victim.Digest, named("HOST/wf/release")(f)))
			f.attach(t, victim, bundleType, bundleType, b)
			grown := bytes.Repeat([]byte(" "), accessory.MaxAccessoryBytes+1)
			ref, pol := throughProxy(t, f, repo, ":1.5.0", func(resp *http.Response) error {
				if strings.Contains(resp.Request.URL.Path, "/blobs/") && resp.ContentLength == int64(len(b)) {
					replaceBody(resp, grown)
				}
				return nil
			})
			pol.TrustPolicies[0].Require.Attestations = nil
			return ref, pol
		}, "oversized signatures", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t, k)
			repo := f.host + "/wf/release"
			ref, pol := c.setup(t, f, repo)
			_, rep, err := f.verifier(t, pol, verify.Options{}).Verify(context.Background(), ref)
			var fail *verify.Failure
			if !errors.As(err, &fail) || !errors.Is(err, errdef.ErrVerification) {
				t.Fatalf("err = %v, want a verification failure; report %+v", err, rep)
			}
			want := strings.ReplaceAll(c.want, "HOST", f.host)
			if fail.Check != verify.CheckSignatures || !strings.Contains(fail.Detail+" | "+fail.Expected+" | "+fail.Actual, want) {
				t.Fatalf("failed %s: %s (expected %s; got %s), want check signatures mentioning %q", fail.Check, fail.Detail, fail.Expected, fail.Actual, want)
			}
			if rep.Malformed != c.malformed {
				t.Errorf("%d malformed entries reported, want %d (%v)", rep.Malformed, c.malformed, rep.Warnings)
			}
			t.Logf("%v", err)
		})
	}
}

func TestBundleSignedIdentity(t *testing.T) {
	k := newKeys(t)
	f := newFixture(t, k)
	repo := f.host + "/wf/release"
	victim := f.release(t, repo+":1.5.0", recipe{unsigned: true})
	// A stock cosign v3 signature: the digest only.
	f.attach(t, victim, bundleType, bundleType, makeBundle(t, f.key, signStatement(t, victim.Digest, nil)))
	for _, c := range []struct {
		identity trust.IdentityType
		ok       bool
	}{{trust.Exact, false}, {trust.MatchRepository, false}, {trust.DigestOnly, true}} {
		pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
		pol.TrustPolicies[0].SignedIdentity = trust.SignedIdentity{Type: c.identity}
		_, rep, err := f.verifier(t, pol, verify.Options{}).Verify(context.Background(), repo+":1.5.0")
		if (err == nil) != c.ok {
			t.Errorf("signedIdentity %s: err = %v, want ok %v; report %+v", c.identity, err, c.ok, rep)
		}
	}
}

func TestBundleThresholds(t *testing.T) {
	k := newKeys(t)
	f := newFixture(t, k)
	repo := f.host + "/wf/release"
	// Signer A: legacy; signer B: a bundle naming the repository.
	subj := f.release(t, repo+":1.4.0", recipe{})
	policy := func() *trust.Policy {
		pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
		s := &pol.TrustPolicies[0]
		s.Signers = []trust.Signer{{Name: "ociwf-a", Key: f.pub}, {Name: "security-b", Key: f.otherPub}}
		s.Threshold = 2
		return pol
	}
	_, rep, err := f.verifier(t, policy(), verify.Options{}).Verify(context.Background(), repo+":1.4.0")
	var fail *verify.Failure
	if !errors.As(err, &fail) || !strings.Contains(fail.Expected, "security-b") || !strings.Contains(fail.Actual, "1 (ociwf-a)") {
		t.Fatalf("before the countersignature: err = %v, want too few signers naming security-b; report %+v", err, rep)
	}
	b := accessory.NewRegistry(f.o, accessory.RegistryOptions{Format: accessory.FormatBundle})
	if _, err := b.Sign(context.Background(), f.other, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	_, rep, err = f.verifier(t, policy(), verify.Options{}).Verify(context.Background(), repo+":1.4.0")
	if err != nil || len(rep.Signers) != 2 {
		t.Fatalf("2-of-2, legacy and bundle: err = %v, signers %v", err, rep.Signers)
	}
	// The trusted key signs a bundle too: still two signers.
	if _, err := b.Sign(context.Background(), f.signer, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	_, rep, err = f.verifier(t, policy(), verify.Options{}).Verify(context.Background(), repo+":1.4.0")
	if err != nil || len(rep.Signers) != 2 {
		t.Fatalf("2-of-2 with one signer in both formats: err = %v, signers %v", err, rep.Signers)
	}
}

// TestStockCosign3Bundles checks that a countersignature and attestation
// made by stock cosign v3 (bundles, offline) count.
func TestStockCosign3Bundles(t *testing.T) {
	bin, err := filepath.Abs("../../.tools/bin/cosign3")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("stock cosign v3 missing (scripts/tools.sh builds it): %v", err)
		}
		t.Skipf("stock cosign v3 not built (%s; run scripts/tools.sh)", bin)
	}
	k := newKeys(t)
	f := newFixture(t, k)
	repo := f.host + "/wf/release"
	subj := f.release(t, repo+":1.4.0", recipe{})
	ref := subj.String()
	run := func(args ...string) {
		t.Helper()
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), "COSIGN_PASSWORD="+attesttest.Password)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("cosign3 %v: %v\n%s", args, err, out)
		}
	}
	run("sign", "--key", f.otherKey, "-a", accessory.AnnotationReference+"="+repo, "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry", "--yes", ref)
	pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
	s := &pol.TrustPolicies[0]
	s.Signers = []trust.Signer{{Name: "ociwf-a", Key: f.pub}, {Name: "security-b", Key: f.otherPub}}
	s.Threshold = 2
	_, rep, err := f.verifier(t, pol, verify.Options{}).Verify(context.Background(), repo+":1.4.0")
	if err != nil || len(rep.Signers) != 2 {
		t.Fatalf("err = %v, signers %v", err, rep.Signers)
	}
	// Attestations by stock cosign v3 alone satisfy a policy trusting only
	// its key.
	pred, err := provenance.Generate(attesttest.Sample(t, sample), provenance.Options{BuilderID: "https://ci.example/builders/1", SourceURI: "git+https://example.com/acme/wf"})
	if err != nil {
		t.Fatal(err)
	}
	raw, err := provenance.Marshal(pred)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "slsa.json"), raw, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "bom.json"), attesttest.Sample(t, sample).SBOM, 0o644))
	for _, a := range [][2]string{{"slsaprovenance1", "slsa.json"}, {"cyclonedx", "bom.json"}} {
		run("attest", "--key", f.otherKey, "--type", a[0], "--predicate", filepath.Join(dir, a[1]), "--use-signing-config=false", "--tlog-upload=false", "--allow-http-registry", "--allow-insecure-registry", "--yes", ref)
	}
	only := trust.KeyPolicy(f.otherPub, repo, trust.KeyPolicyOptions{})
	only.TrustPolicies[0].SignedIdentity = trust.SignedIdentity{Type: trust.Exact}
	_, rep, err = f.verifier(t, only, verify.Options{}).Verify(context.Background(), repo+":1.4.0")
	if err != nil || len(rep.Signers) != 1 || len(rep.Attestations) != 2 {
		t.Fatalf("policy trusting only cosign v3's key: err = %v, signers %v, %d attestations", err, rep.Signers, len(rep.Attestations))
	}
}

// A bundle referrer whose manifest declares a layer over the read limit
// is skipped as malformed, not fetched: anyone with push access could
// otherwise block the verification of a validly signed version.
func TestOversizedBundleReferrerIsSkipped(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	subj := f.release(t, repo+":1.4.0", recipe{format: accessory.FormatBundle})
	tg, err := f.o.Open(ctx, subj.String())
	must(t, err)
	layer, err := oras.PushBytes(ctx, tg.Storage, bundleType, bytes.Repeat([]byte(" "), accessory.MaxAccessoryBytes+1))
	must(t, err)
	desc, err := tg.Storage.Resolve(ctx, subj.Digest.String())
	must(t, err)
	_, err = oras.PackManifest(ctx, tg.Storage, oras.PackManifestVersion1_1, bundleType, oras.PackManifestOptions{Subject: &desc, Layers: []ocispec.Descriptor{layer}})
	must(t, err)
	v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{})
	_, rep, err := v.Verify(ctx, repo+":1.4.0")
	if err != nil || !rep.Verified {
		t.Fatalf("verify with an oversized bundle referrer stored: %v\n%+v", err, rep)
	}
	if rep.Malformed != 1 {
		t.Fatalf("malformed %d, want 1", rep.Malformed)
	}
}
