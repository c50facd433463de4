package verify_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/policy/trust"
)

const (
	simpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsse          = "application/vnd.dsse.envelope.v1+json"
	sigArtifact   = "application/vnd.dev.cosign.artifact.sig.v1+json"
)

// publishVersion runs the publication ceremony for the sample at ref.
func (f *fixture) publishVersion(t *testing.T, ref string, mode accessory.Mode) accessory.Subject {
	t.Helper()
	ctx := context.Background()
	dst, err := f.o.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	res, err := publish.Publish(ctx, dst, attesttest.Sample(t, sample), accessory.NewRegistry(f.o, accessory.RegistryOptions{Mode: mode}), publish.Key(f.signer), publish.Options{
		Tag:        dst.Reference,
		Provenance: provenance.Options{BuilderID: "https://ci.example/builders/1", SourceURI: "git+https://example.com/acme/wf"},
		Now:        func() time.Time { return time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC) },
	})
	if err != nil {
		t.Fatalf("publish %s: %v", ref, err)
	}
	return accessory.Subject{Repository: dst.Name, Digest: res.Descriptor.Digest, Tag: res.Tag}
}

// appendLayer appends a layer of media type mt holding body, without
// cosign's signature annotation, to the manifest tagged tag.
func (f *fixture) appendLayer(t *testing.T, repo, tag, mt string, body []byte) {
	t.Helper()
	f.appendDescriptor(t, repo, tag, mt, body, nil)
}

// appendDescriptor is appendLayer with the layer's descriptor edited.
func (f *fixture) appendDescriptor(t *testing.T, repo, tag, mt string, body []byte, edit func(*ocispec.Descriptor)) {
	t.Helper()
	ctx := context.Background()
	tg, err := f.o.Open(ctx, repo+":"+tag)
	if err != nil {
		t.Fatal(err)
	}
	_, raw, err := oras.FetchBytes(ctx, tg.Storage, tag, oras.DefaultFetchBytesOptions)
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	must(t, json.Unmarshal(raw, &m))
	layer, err := oras.PushBytes(ctx, tg.Storage, mt, body)
	if err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(&layer)
	}
	m.Layers = append(m.Layers, layer)
	f.pushManifest(t, repo, tag, m)
}

// attach stores a referrer of subj as `oras attach --artifact-type
// artifactType` does: one layer of media type mt holding body, no cosign
// annotations.
func (f *fixture) attach(t *testing.T, subj accessory.Subject, artifactType, mt string, body []byte) {
	t.Helper()
	ctx := context.Background()
	tg, err := f.o.Open(ctx, subj.String())
	if err != nil {
		t.Fatal(err)
	}
	layer, err := oras.PushBytes(ctx, tg.Storage, mt, body)
	if err != nil {
		t.Fatal(err)
	}
	layer.Annotations = map[string]string{ocispec.AnnotationTitle: "note.txt"}
	desc, err := tg.Storage.Resolve(ctx, subj.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := oras.PackManifest(ctx, tg.Storage, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{
		Subject: &desc,
		Layers:  []ocispec.Descriptor{layer},
	}); err != nil {
		t.Fatal(err)
	}
}

// attachIndex stores an empty image index of artifactType as a referrer
// of subj.
func (f *fixture) attachIndex(t *testing.T, subj accessory.Subject, artifactType string) {
	t.Helper()
	ctx := context.Background()
	tg, err := f.o.Open(ctx, subj.String())
	if err != nil {
		t.Fatal(err)
	}
	desc, err := tg.Storage.Resolve(ctx, subj.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	idx := ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, ArtifactType: artifactType, Subject: &desc, Manifests: []ocispec.Descriptor{}}
	raw, err := json.Marshal(idx)
	must(t, err)
	if _, err := oras.PushBytes(ctx, tg.Storage, ocispec.MediaTypeImageIndex, raw); err != nil {
		t.Fatal(err)
	}
}

// One malformed signature or attestation entry, which anyone with push
// access to a plain registry can add to any version, is skipped and
// reported; the valid ones still verify, and signing and publishing again
// still work.
func TestMalformedAccessoriesAreSkipped(t *testing.T) {
	k := newKeys(t)
	cases := []struct {
		name    string
		mode    accessory.Mode
		tamper  func(t *testing.T, f *fixture, repo string, subj accessory.Subject)
		skipped int
		// plain: on a registry without ociwf's rules, which refuse
		// malformed entries in cosign's tags.
		plain bool
	}{
		{name: "tag scheme, layers without the signature annotation or oversized", mode: accessory.TagScheme, skipped: 3, plain: true,
			tamper: func(t *testing.T, f *fixture, repo string, subj accessory.Subject) {
				f.appendLayer(t, repo, sigTag(subj.Digest, ".sig"), simpleSigning, []byte(`{"critical":{}}`))
				f.appendDescriptor(t, repo, sigTag(subj.Digest, ".sig"), simpleSigning, []byte(`{}`), func(d *ocispec.Descriptor) {
					d.Size = accessory.MaxAccessoryBytes + 1
					d.Annotations = map[string]string{"dev.cosignproject.cosign/signature": "c2ln"}
				})
				f.appendLayer(t, repo, sigTag(subj.Digest, ".att"), dsse, []byte(`{}`))
			}},
		{name: "referrers, attached without cosign annotations", mode: accessory.Referrers, skipped: 3,
			tamper: func(t *testing.T, f *fixture, repo string, subj accessory.Subject) {
				f.attach(t, subj, sigArtifact, simpleSigning, []byte(`{"critical":{}}`))
				f.attach(t, subj, sigArtifact, "application/vnd.oci.image.layer.v1.tar", []byte("hello"))
				f.attachIndex(t, subj, sigArtifact)
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, k)
			if tc.plain {
				f = newPlainFixture(t, k)
			}
			repo := f.host + "/wf/release"
			subj := f.publishVersion(t, repo+":1.4.0", tc.mode)
			tc.tamper(t, f, repo, subj)

			v := f.verifier(t, trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}), verify.Options{})
			_, rep, err := v.Verify(ctx, repo+":1.4.0")
			if err != nil || !rep.Verified {
				t.Fatalf("verify: %v\n%+v", err, rep)
			}
			if rep.Malformed != tc.skipped || !strings.Contains(strings.Join(rep.Warnings, "\n"), "skipped") {
				t.Fatalf("skipped %d, want %d; warnings %q", rep.Malformed, tc.skipped, rep.Warnings)
			}
			raw, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct{ Malformed int }
			must(t, json.Unmarshal(raw, &doc))
			if doc.Malformed != tc.skipped {
				t.Fatalf("JSON report counts %d skipped: %s", doc.Malformed, raw)
			}

			// The Find primitive lists the same entries.
			found, err := accessory.NewRegistry(f.o, accessory.RegistryOptions{}).Find(ctx, subj)
			if err != nil || len(found.Malformed) != tc.skipped {
				t.Fatalf("accessory.Registry.Find: %v %+v", err, found)
			}

			// Signing again finds the stored signature despite the
			// malformed entry and writes nothing.
			reg := accessory.NewRegistry(f.o, accessory.RegistryOptions{Mode: tc.mode})
			res, err := reg.Sign(ctx, f.signer, subj, accessory.SignOptions{})
			if err != nil || !res.Existing {
				t.Fatalf("sign again: %+v %v", res, err)
			}
			// So does publishing again.
			if again := f.publishVersion(t, repo+":1.4.0", tc.mode); again.Digest != subj.Digest {
				t.Fatalf("published again as %s", again.Digest)
			}
			if _, rep, err := v.Verify(ctx, subj.String()); err != nil || rep.Malformed != tc.skipped {
				t.Fatalf("verify after publishing again: %v\n%+v", err, rep)
			}
		})
	}
}

// records collects log records as JSON lines.
type records struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (r *records) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.buf.Write(p)
}

// find returns the records at level whose message is msg.
func (r *records) find(t *testing.T, level slog.Level, msg string) []map[string]any {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(r.buf.Bytes()), []byte("\n")) {
		var m map[string]any
		must(t, json.Unmarshal(line, &m))
		if m["level"] == level.String() && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// The verifier logs each check's result and the requests at debug, and
// warns about skipped malformed entries and scopes that skip verification.
func TestVerifierLogs(t *testing.T) {
	ctx := context.Background()
	f := newPlainFixture(t, newKeys(t))
	repo := f.host + "/wf/release"
	subj := f.publishVersion(t, repo+":1.4.0", accessory.TagScheme)
	f.appendLayer(t, repo, sigTag(subj.Digest, ".sig"), simpleSigning, []byte(`{"critical":{}}`))
	var rec records
	log := slog.New(slog.NewJSONHandler(&rec, &slog.HandlerOptions{Level: slog.LevelDebug}))
	pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
	pol.TrustPolicies = append(pol.TrustPolicies, trust.Scope{Name: "rest", RegistryScopes: []string{"*"}, Skip: true})
	v := f.verifier(t, pol, verify.Options{Logger: log})
	if _, _, err := v.Verify(ctx, repo+":1.4.0"); err != nil {
		t.Fatal(err)
	}
	checks := rec.find(t, slog.LevelDebug, "check")
	if len(checks) != len(verify.Checks()) {
		t.Fatalf("%d check records, want %d:\n%s", len(checks), len(verify.Checks()), rec.buf.String())
	}
	for i, c := range checks {
		if c["check"] != verify.Checks()[i] || c["status"] == nil || c["reference"] != repo+":1.4.0" {
			t.Fatalf("check record %v", c)
		}
	}
	if done := rec.find(t, slog.LevelDebug, "verified"); len(done) != 1 || done[0]["requests"].(float64) < 1 {
		t.Fatalf("summary records %v", done)
	}
	if w := rec.find(t, slog.LevelWarn, "malformed entry skipped"); len(w) != 1 || w[0]["manifest"] == nil {
		t.Fatalf("malformed warnings %v", w)
	}

	f.release(t, f.host+"/wf/scratch:1", recipe{unsigned: true})
	if _, _, err := v.Verify(ctx, f.host+"/wf/scratch:1"); err == nil {
		t.Fatal("a skipping scope was accepted")
	}
	if w := rec.find(t, slog.LevelWarn, "trust policy scope skips verification"); len(w) != 1 || w[0]["scope"] != "rest" {
		t.Fatalf("skip warnings %v", w)
	}
	if done := rec.find(t, slog.LevelDebug, "not verified"); len(done) != 1 || done[0]["error"] == nil {
		t.Fatalf("summary records %v", done)
	}
}
