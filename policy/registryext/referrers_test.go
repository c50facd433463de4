package registryext_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// referrer builds a manifest with a subject and an artifact type.
func (c *client) referrer(subject []byte, artifactType, layer string) []byte {
	c.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, ArtifactType: artifactType, Config: c.blob("{}"),
		Layers:  []ocispec.Descriptor{c.blob(layer)},
		Subject: &ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subject), Size: int64(len(subject))}}
	m.Config.MediaType = "application/vnd.oci.empty.v1+json"
	m.SchemaVersion = 2
	b, _ := json.Marshal(m)
	return b
}

func (c *client) referrers(subject []byte, query string) (*http.Response, ocispec.Index) {
	c.t.Helper()
	resp, err := http.Get(c.base + "/referrers/" + digest.FromBytes(subject).String() + query)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var idx ocispec.Index
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&idx); err != nil {
			c.t.Fatal(err)
		}
	}
	return resp, idx
}

func TestReferrers(t *testing.T) {
	srv := registrytest.Start(t, registryext.Config{MetricsAddr: "127.0.0.1:0"})
	c := newClient(t, srv.Addr(), "workflows/ref")
	subject := c.manifest("subject")
	sig := c.referrer(subject, "application/vnd.dev.cosign.artifact.sig.v1+json", "sig")
	sbom := c.referrer(subject, "application/vnd.cyclonedx+json", "sbom")

	// No referrers yet, not even a subject: an empty index.
	resp, idx := c.referrers(subject, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != ocispec.MediaTypeImageIndex || len(idx.Manifests) != 0 || idx.SchemaVersion != 2 {
		t.Fatalf("empty: %d %+v", resp.StatusCode, idx)
	}
	// A referrer pushed before its subject is indexed, and the push says so.
	r := c.put(digest.FromBytes(sig).String(), sig)
	expect(t, "push a referrer", r, http.StatusCreated, "")
	expect(t, "HEAD the referrer", c.do(http.MethodHead, "/manifests/"+digest.FromBytes(sig).String(), nil), http.StatusOK, "")
	putResp := c.putResponse(digest.FromBytes(sbom).String(), sbom)
	if putResp.Header.Get("OCI-Subject") != digest.FromBytes(subject).String() {
		t.Fatalf("OCI-Subject %q", putResp.Header.Get("OCI-Subject"))
	}
	expect(t, "push the subject", c.put("1.0.0", subject), http.StatusCreated, "")

	_, idx = c.referrers(subject, "")
	if len(idx.Manifests) != 2 {
		t.Fatalf("referrers %+v", idx)
	}
	for _, d := range idx.Manifests {
		if d.MediaType != ocispec.MediaTypeImageManifest || d.ArtifactType == "" || d.Size == 0 {
			t.Fatalf("descriptor %+v", d)
		}
	}
	resp, idx = c.referrers(subject, "?artifactType=application/vnd.cyclonedx%2Bjson")
	if resp.Header.Get("OCI-Filters-Applied") != "artifactType" || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sbom) {
		t.Fatalf("filtered: %v %+v", resp.Header, idx)
	}
	// Referrers of a protected manifest stay.
	expect(t, "delete a referrer of 1.0.0", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(sbom).String(), nil), http.StatusForbidden, "tag 1.0.0 (rule semver) reaches it")
	// Deleting a referrer of an unprotected manifest drops it from the index.
	draft := c.manifest("draft")
	expect(t, "push a draft", c.put("draft", draft), http.StatusCreated, "")
	note := c.referrer(draft, "application/vnd.example.note", "note")
	expect(t, "annotate the draft", c.put(digest.FromBytes(note).String(), note), http.StatusCreated, "")
	if _, idx = c.referrers(draft, ""); len(idx.Manifests) != 1 {
		t.Fatalf("draft referrers: %+v", idx)
	}
	expect(t, "delete the note", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(note).String(), nil), http.StatusAccepted, "")
	if _, idx = c.referrers(draft, ""); len(idx.Manifests) != 0 {
		t.Fatalf("after delete: %+v", idx)
	}
	if _, idx = c.referrers(subject, ""); len(idx.Manifests) != 2 {
		t.Fatalf("1.0.0 referrers after the refused delete: %+v", idx)
	}
	if resp, _ := c.referrers([]byte("x"), ""); resp.StatusCode != 200 {
		t.Fatal(resp.StatusCode)
	}
	bad, _ := http.Get(c.base + "/referrers/sha256:nothex")
	if bad.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad digest: %d", bad.StatusCode)
	}
	resp, err := http.Get("http://" + srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(metrics), "ociwf_registry_referrers_served_total 7\n") {
		t.Fatalf("referrers served:\n%s", metrics)
	}
}
