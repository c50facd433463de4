package registryext_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/keys"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// lifecyclePass encrypts the test signer's key.
func lifecyclePass(bool) ([]byte, error) { return []byte("lifecycle test password"), nil }

// testSigner is a cosign key pair's signer, as accessory writes one.
func testSigner(t *testing.T) *accessory.Signer {
	t.Helper()
	kp, err := accessory.GenerateKeyPair(lifecyclePass)
	if err != nil {
		t.Fatal(err)
	}
	key, _, err := accessory.WriteKeyFiles(filepath.Join(t.TempDir(), "cosign"), kp, false)
	if err != nil {
		t.Fatal(err)
	}
	s, err := keys.LoadSigner(context.Background(), accessory.SignerOptions{Key: key, Pass: lifecyclePass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// attester writes attestations to one test registry with
// accessory.Registry, in one mode and format.
type attester struct {
	t    *testing.T
	host string
	reg  *accessory.Registry
	s    *accessory.Signer
}

func newAttester(t *testing.T, host string, s *accessory.Signer, mode accessory.Mode, format accessory.Format) *attester {
	c := accessory.NewClient(accessory.ClientOptions{PlainHTTP: []string{host}})
	return &attester{t: t, host: host, s: s, reg: accessory.NewRegistry(c, accessory.RegistryOptions{Mode: mode, Format: format})}
}

// attest stores a statement of predicate type typ about subject in repo.
func (a *attester) attest(repo string, subject []byte, typ string, predicate any) {
	a.t.Helper()
	p, err := json.Marshal(predicate)
	if err != nil {
		a.t.Fatal(err)
	}
	subj := accessory.Subject{Repository: a.host + "/" + repo, Digest: digest.FromBytes(subject)}
	if _, err := a.reg.Attest(context.Background(), a.s, subj, accessory.AttestOptions{Type: typ, Predicate: p, Duplicates: accessory.Append}); err != nil {
		a.t.Fatalf("attest %s: %v", typ, err)
	}
}

// event is a lifecycle event predicate entering state.
func event(subject []byte, state lifecycle.State, seq int) lifecycle.Event {
	return lifecycle.Event{Workflow: digest.FromBytes(subject).String(), State: state, Sequence: seq, Reason: "test"}
}

// auditLines verifies the audit log at path and returns its lines.
func auditLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(b))
	if err != nil || rep.Broken != nil {
		t.Fatalf("audit log: %+v %v\n%s", rep, err, b)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}

// denied expects a 403 DENIED for the request and its denial in the audit
// log, naming the operation, the digest and the rule.
func denied(t *testing.T, log, what string, r response, operation string, dgst digest.Digest, rule string) {
	t.Helper()
	expect(t, what, r, http.StatusForbidden, `"code":"DENIED"`)
	expect(t, what, r, http.StatusForbidden, `"rule":"`+rule+`"`)
	entryOf(t, auditLines(t, log), `"operation":"`+operation+`"`, `"digest":"`+dgst.String()+`"`, `"outcome":"denied","rule":"`+rule+`"`)
}

// index fetches the image manifest under ref.
func (c *client) image(ref string) (ocispec.Manifest, []byte) {
	c.t.Helper()
	r := c.do(http.MethodGet, "/manifests/"+ref, nil)
	if r.status != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s", ref, r.status, r.body)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		c.t.Fatal(err)
	}
	return m, []byte(r.body)
}

// Lifecycle events and approvals, in every form accessory.Registry stores
// them (DSSE layers of the cosign .att tag, cosign attestation referrers,
// sigstore bundle referrers), can be added but neither removed nor
// deleted, nor can the version they are about, whatever tag names it and
// whatever the rules say of accessory tags; every refusal is audited.
// Attestations of other kinds, of a version without lifecycle facts,
// still go.
func TestLifecycleAccessoriesUndeletable(t *testing.T) {
	mutable, err := immutability.Parse("rules.yaml", []byte("version: ociwf.dev/immutability/v1\naccessories: mutable\n"))
	if err != nil {
		t.Fatal(err)
	}
	s := testSigner(t)
	for _, rc := range []struct {
		name  string
		rules *immutability.Rules
	}{
		{"default rules", nil},
		{"accessories mutable", mutable},
	} {
		t.Run(rc.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "audit.jsonl")
			srv := registrytest.Start(t, registryext.Config{Root: filepath.Join(dir, "root"), AuditLog: log, Rules: rc.rules})
			host := srv.Addr()
			repo := "workflows/life"
			c := newClient(t, host, repo)

			t.Run("att tag and bundle referrers", func(t *testing.T) {
				subject := c.manifest("tagged version")
				sd := digest.FromBytes(subject)
				// A draft carries mutable tags only.
				expect(t, "push the version", c.put("draft", subject), http.StatusCreated, "")
				a := newAttester(t, host, s, accessory.TagScheme, accessory.FormatBoth)
				a.attest(repo, subject, "https://slsa.dev/provenance/v1", map[string]string{"builder": "ci"})
				a.attest(repo, subject, lifecycle.EventPredicateType, event(subject, lifecycle.Review, 1))
				a.attest(repo, subject, lifecycle.ApprovalPredicateType, lifecycle.Approval{Workflow: sd.String(), Decision: lifecycle.Approve})

				att := "sha256-" + sd.Encoded() + ".att"
				m, raw := c.image(att)
				if len(m.Layers) != 3 {
					t.Fatalf(".att holds %d layers, want 3", len(m.Layers))
				}
				// Rewrite .att without the event (and, separately, without
				// the approval).
				for _, drop := range []string{lifecycle.EventPredicateType, lifecycle.ApprovalPredicateType} {
					kept := m
					kept.Layers = nil
					for _, l := range m.Layers {
						if l.Annotations["predicateType"] != drop {
							kept.Layers = append(kept.Layers, l)
						}
					}
					if len(kept.Layers) != 2 {
						t.Fatalf("no layer of %s in .att", drop)
					}
					b, _ := json.Marshal(kept)
					denied(t, log, "rewrite .att without "+drop, c.put(att, b), "manifest-put", digest.FromBytes(b), registryext.LifecycleRule)
				}
				// Nor may the tag go, or the manifest it names, or a blob.
				r := c.do(http.MethodDelete, "/manifests/"+att, nil)
				expect(t, "delete the .att tag", r, http.StatusForbidden, `"code":"DENIED"`)
				entryOf(t, auditLines(t, log), `"operation":"tag-delete"`, `"tag":"`+att+`"`, `"outcome":"denied"`)
				denied(t, log, "delete the .att manifest", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(raw).String(), nil), "manifest-delete", digest.FromBytes(raw), protectingRule(rc.rules))
				for _, l := range m.Layers {
					denied(t, log, "delete an .att layer", c.do(http.MethodDelete, "/blobs/"+l.Digest.String(), nil), "blob-delete", l.Digest, protectingRule(rc.rules))
				}
				// The bundle referrers of the event and the approval.
				_, idx := c.referrers(subject, "")
				var bundles int
				for _, d := range idx.Manifests {
					pt := d.Annotations["dev.sigstore.bundle.predicateType"]
					if pt != lifecycle.EventPredicateType && pt != lifecycle.ApprovalPredicateType {
						continue
					}
					bundles++
					denied(t, log, "delete the bundle referrer of "+pt, c.do(http.MethodDelete, "/manifests/"+d.Digest.String(), nil), "manifest-delete", d.Digest, registryext.LifecycleRule)
					bm, _ := c.image(d.Digest.String())
					denied(t, log, "delete the bundle of "+pt, c.do(http.MethodDelete, "/blobs/"+bm.Layers[0].Digest.String(), nil), "blob-delete", bm.Layers[0].Digest, registryext.LifecycleRule)
				}
				if bundles != 2 {
					t.Fatalf("%d lifecycle bundle referrers, want 2: %+v", bundles, idx.Manifests)
				}
				denied(t, log, "delete the version", c.do(http.MethodDelete, "/manifests/"+sd.String(), nil), "manifest-delete", sd, registryext.LifecycleRule)
				denied(t, log, "delete the version's layer", c.do(http.MethodDelete, "/blobs/"+digest.FromString("tagged version").String(), nil), "blob-delete", digest.FromString("tagged version"), registryext.LifecycleRule)
				// Adding goes on.
				a.attest(repo, subject, lifecycle.EventPredicateType, event(subject, lifecycle.Published, 2))
				if m, _ := c.image(att); len(m.Layers) != 4 {
					t.Fatalf(".att holds %d layers after another event, want 4", len(m.Layers))
				}
			})

			t.Run("attestation referrers", func(t *testing.T) {
				subject := c.manifest("untagged version")
				sd := digest.FromBytes(subject)
				expect(t, "push the version by digest", c.put(sd.String(), subject), http.StatusCreated, "")
				a := newAttester(t, host, s, accessory.Referrers, accessory.FormatLegacy)
				a.attest(repo, subject, lifecycle.EventPredicateType, event(subject, lifecycle.Review, 1))
				_, idx := c.referrers(subject, "")
				if len(idx.Manifests) != 1 {
					t.Fatalf("%d referrers, want 1", len(idx.Manifests))
				}
				ref := idx.Manifests[0].Digest
				denied(t, log, "delete the event referrer", c.do(http.MethodDelete, "/manifests/"+ref.String(), nil), "manifest-delete", ref, registryext.LifecycleRule)
				rm, _ := c.image(ref.String())
				denied(t, log, "delete the event's envelope", c.do(http.MethodDelete, "/blobs/"+rm.Layers[0].Digest.String(), nil), "blob-delete", rm.Layers[0].Digest, registryext.LifecycleRule)
				denied(t, log, "delete the version", c.do(http.MethodDelete, "/manifests/"+sd.String(), nil), "manifest-delete", sd, registryext.LifecycleRule)
			})

			t.Run("other attestations still go", func(t *testing.T) {
				subject := c.manifest("scratch version")
				sd := digest.FromBytes(subject)
				expect(t, "push the version", c.put("scratch", subject), http.StatusCreated, "")
				a := newAttester(t, host, s, accessory.Referrers, accessory.FormatBoth)
				a.attest(repo, subject, "https://example.com/note/v1", map[string]string{"note": "n"})
				_, idx := c.referrers(subject, "")
				if len(idx.Manifests) != 2 {
					t.Fatalf("%d referrers, want 2", len(idx.Manifests))
				}
				for _, d := range idx.Manifests {
					expect(t, "delete a note referrer", c.do(http.MethodDelete, "/manifests/"+d.Digest.String(), nil), http.StatusAccepted, "")
				}
				expect(t, "delete the version", c.do(http.MethodDelete, "/manifests/"+sd.String(), nil), http.StatusAccepted, "")
			})
		})
	}
}

// protectingRule is the rule that refuses deleting what the .att tag
// reaches: the accessory rule while it protects the tag, else the
// lifecycle rule.
func protectingRule(rules *immutability.Rules) string {
	if rules != nil && rules.Accessories == immutability.Mutable {
		return registryext.LifecycleRule
	}
	return immutability.AccessoryRule().Name
}

// The garbage collector keeps a version with lifecycle attestations and
// those attestations, in every form, though no tag names the version;
// an untagged version with other attestations goes, with them.
func TestGarbageCollectKeepsLifecycle(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	srv, stop := serveAt(t, root)
	host, repo := srv.Addr(), "workflows/gc-life"
	c := newClient(t, host, repo)
	s := testSigner(t)
	var kept, gone []string
	for i, form := range []struct {
		mode   accessory.Mode
		format accessory.Format
	}{{accessory.Referrers, accessory.FormatLegacy}, {accessory.TagScheme, accessory.FormatBundle}} {
		a := newAttester(t, host, s, form.mode, form.format)
		version := c.manifest(fmt.Sprintf("version %d", i))
		expect(t, "push a version by digest", c.put(digest.FromBytes(version).String(), version), http.StatusCreated, "")
		a.attest(repo, version, lifecycle.EventPredicateType, event(version, lifecycle.Review, 1))
		other := c.manifest(fmt.Sprintf("other %d", i))
		expect(t, "push another by digest", c.put(digest.FromBytes(other).String(), other), http.StatusCreated, "")
		a.attest(repo, other, "https://example.com/note/v1", map[string]string{"note": "n"})
		kept = append(kept, "/manifests/"+digest.FromBytes(version).String(), "/blobs/"+digest.FromString(fmt.Sprintf("version %d", i)).String())
		gone = append(gone, "/manifests/"+digest.FromBytes(other).String(), "/blobs/"+digest.FromString(fmt.Sprintf("other %d", i)).String())
		_, idx := c.referrers(version, "")
		_, oidx := c.referrers(other, "")
		if len(idx.Manifests) != 1 || len(oidx.Manifests) != 1 {
			t.Fatalf("referrers: %+v, %+v", idx, oidx)
		}
		kept = append(kept, "/manifests/"+idx.Manifests[0].Digest.String())
		gone = append(gone, "/manifests/"+oidx.Manifests[0].Digest.String())
	}
	stop()
	if _, err := registryext.GarbageCollect(context.Background(), registryext.Config{Root: root}, registryext.GCOptions{DeleteUntagged: true}); err != nil {
		t.Fatal(err)
	}
	c, _ = serveUntilStopped(t, root, repo)
	for _, p := range kept {
		expect(t, "kept "+p, c.do(http.MethodGet, p, nil), http.StatusOK, "")
	}
	for _, p := range gone {
		expect(t, "deleted "+p, c.do(http.MethodGet, p, nil), http.StatusNotFound, "")
	}
}

// The audit log names the predicate types each accessory PUT adds, in
// every form: the DSSE layers a .att tag manifest adds (not those it
// keeps), the statement of a cosign attestation referrer (whose layer
// carries no annotation), the bundle of a bundle referrer; a referrer
// without attestations is named by its artifact type.
func TestAuditPredicateTypes(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{Root: filepath.Join(dir, "root"), AuditLog: log})
	host, repo := srv.Addr(), "workflows/audited"
	c := newClient(t, host, repo)
	s := testSigner(t)
	ev, ap := `"predicateTypes":["`+lifecycle.EventPredicateType+`"]`, `"predicateTypes":["`+lifecycle.ApprovalPredicateType+`"]`

	// The .att tag: each PUT names only what it adds.
	tagged := c.manifest("att version")
	expect(t, "push a version", c.put("draft", tagged), http.StatusCreated, "")
	att := "sha256-" + digest.FromBytes(tagged).Encoded() + ".att"
	legacy := newAttester(t, host, s, accessory.TagScheme, accessory.FormatLegacy)
	legacy.attest(repo, tagged, lifecycle.EventPredicateType, event(tagged, lifecycle.Review, 1))
	legacy.attest(repo, tagged, lifecycle.ApprovalPredicateType, lifecycle.Approval{Workflow: digest.FromBytes(tagged).String(), Decision: lifecycle.Approve})
	lines := auditLines(t, log)
	entryOf(t, lines, `"operation":"manifest-put"`, `"tag":"`+att+`"`, ev)
	entryOf(t, lines, `"operation":"manifest-put"`, `"tag":"`+att+`"`, ap)
	entryOf(t, lines, `"operation":"manifest-put"`, `"tag":"draft"`, `"outcome":"ok","prev"`)

	// Referrers, legacy and bundle, and a signature referrer.
	untagged := c.manifest("referred version")
	expect(t, "push a version", c.put(digest.FromBytes(untagged).String(), untagged), http.StatusCreated, "")
	both := newAttester(t, host, s, accessory.Referrers, accessory.FormatBoth)
	both.attest(repo, untagged, lifecycle.EventPredicateType, event(untagged, lifecycle.Review, 1))
	subj := accessory.Subject{Repository: host + "/" + repo, Digest: digest.FromBytes(untagged)}
	if _, err := both.reg.Sign(context.Background(), s, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	_, idx := c.referrers(untagged, "")
	var sawLegacy, sawBundle, sawSignature bool
	lines = auditLines(t, log)
	for _, d := range idx.Manifests {
		line := entryOf(t, lines, `"operation":"manifest-put"`, `"digest":"`+d.Digest.String()+`"`)
		switch {
		case d.ArtifactType == "application/vnd.in-toto+json":
			sawLegacy = strings.Contains(line, ev)
		case d.Annotations["dev.sigstore.bundle.predicateType"] == lifecycle.EventPredicateType:
			sawBundle = strings.Contains(line, ev)
		case d.ArtifactType == "application/vnd.dev.cosign.artifact.sig.v1+json":
			sawSignature = strings.Contains(line, `"predicateTypes":["application/vnd.dev.cosign.artifact.sig.v1+json"]`)
		}
	}
	if !sawLegacy || !sawBundle || !sawSignature {
		t.Errorf("attestation referrer %v, bundle referrer %v, signature referrer %v named by their types in\n%s", sawLegacy, sawBundle, sawSignature, strings.Join(lines, "\n"))
	}
}
