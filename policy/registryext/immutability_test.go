package registryext_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// client talks plain HTTP to one repository of a test registry.
type client struct {
	t    *testing.T
	base string
	repo *remote.Repository
	// user and password, if set, authenticate every request (basic auth).
	user, password string
}

func newClient(t *testing.T, host, name string) *client {
	repo, err := remote.NewRepository(host + "/" + name)
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	return &client{t: t, base: "http://" + host + "/v2/" + name, repo: repo}
}

// blob pushes content and returns its descriptor.
func (c *client) blob(content string) ocispec.Descriptor {
	c.t.Helper()
	d := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromString(content), Size: int64(len(content))}
	if err := c.repo.Push(context.Background(), d, strings.NewReader(content)); err != nil {
		c.t.Fatal(err)
	}
	return d
}

// manifest builds an OCI manifest with the given layers (pushed first).
func (c *client) manifest(layers ...string) []byte {
	c.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: c.blob("{}")}
	m.SchemaVersion = 2
	for _, l := range layers {
		m.Layers = append(m.Layers, c.blob(l))
	}
	b, _ := json.Marshal(m)
	return b
}

type response struct {
	status int
	body   string
}

func (c *client) do(method, path string, body []byte) response {
	c.t.Helper()
	resp := c.send(method, path, body)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b)}
}

// putResponse PUTs a manifest and returns the whole response.
func (c *client) putResponse(ref string, m []byte) *http.Response {
	c.t.Helper()
	resp := c.send(http.MethodPut, "/manifests/"+ref, m)
	resp.Body.Close()
	return resp
}

func (c *client) send(method, path string, body []byte) *http.Response {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, bytes.NewReader(body))
	if body != nil {
		req.Header.Set("Content-Type", childType(body))
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	return resp
}

func (c *client) put(tag string, m []byte) response {
	return c.do(http.MethodPut, "/manifests/"+tag, m)
}

func expect(t *testing.T, what string, r response, status int, body string) {
	t.Helper()
	if r.status != status || !strings.Contains(r.body, body) {
		t.Fatalf("%s: %d %s; want %d with %q", what, r.status, r.body, status, body)
	}
}

func TestImmutableTags(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{Root: filepath.Join(dir, "root"), AuditLog: log, MetricsAddr: "127.0.0.1:0"})
	c := newClient(t, srv.Addr(), "workflows/build")
	a, b := c.manifest("a"), c.manifest("b")
	da := digest.FromBytes(a)

	expect(t, "create 1.0.0", c.put("1.0.0", a), http.StatusCreated, "")
	expect(t, "re-put the same manifest", c.put("1.0.0", a), http.StatusCreated, "")
	expect(t, "move 1.0.0", c.put("1.0.0", b), http.StatusForbidden, `"code":"DENIED","detail":{"digest":"`+digest.FromBytes(b).String()+`","repository":"workflows/build","rule":"semver","tag":"1.0.0"}`)
	expect(t, "move 1.0.0 (message)", c.put("1.0.0", b), http.StatusForbidden, "tag 1.0.0 of workflows/build is immutable (rule semver) and names "+da.String())
	expect(t, "delete tag 1.0.0", c.do(http.MethodDelete, "/manifests/1.0.0", nil), http.StatusForbidden, "cannot be deleted")
	expect(t, "delete its manifest", c.do(http.MethodDelete, "/manifests/"+da.String(), nil), http.StatusForbidden, "tag 1.0.0 (rule semver) reaches it")
	layer := digest.FromString("a")
	expect(t, "delete its layer", c.do(http.MethodDelete, "/blobs/"+layer.String(), nil), http.StatusForbidden, "references it")
	expect(t, "the tag still names the first manifest", c.do(http.MethodGet, "/manifests/1.0.0", nil), http.StatusOK, `"digest":"`+layer.String()+`"`)

	// Mutable tags move and go.
	expect(t, "latest", c.put("latest", a), http.StatusCreated, "")
	expect(t, "move latest", c.put("latest", b), http.StatusCreated, "")
	expect(t, "delete latest", c.do(http.MethodDelete, "/manifests/latest", nil), http.StatusAccepted, "")

	// Cosign's tags are append-only.
	sig := "sha256-" + da.Encoded() + ".sig"
	expect(t, "first signature", c.put(sig, c.accessory(nil, signature("sig1", "s1"))), http.StatusCreated, "")
	expect(t, "second signature added", c.put(sig, c.accessory(nil, signature("sig1", "s1"), signature("sig2", "s2"))), http.StatusCreated, "")
	expect(t, "signature removed", c.put(sig, c.accessory(nil, signature("sig2", "s2"))), http.StatusForbidden, "append-only (rule cosign-accessories): the new manifest drops "+digest.FromString("sig1").String())

	// Signatures of one payload share a layer digest and differ in their
	// annotation: replacing one is dropping it.
	payload := c.blob("payload")
	signed := func(sigs ...string) []byte {
		m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: c.blob("{}")}
		m.SchemaVersion = 2
		for _, s := range sigs {
			l := payload
			l.MediaType = simpleSigning
			l.Annotations = map[string]string{"dev.cosignproject.cosign/signature": s}
			m.Layers = append(m.Layers, l)
		}
		b, _ := json.Marshal(m)
		return b
	}
	sig2 := "sha256-" + digest.FromBytes(b).Encoded() + ".sig"
	expect(t, "two signatures of one payload", c.put(sig2, signed("alice", "bob")), http.StatusCreated, "")
	expect(t, "both replaced by one", c.put(sig2, signed("garbage")), http.StatusForbidden, "append-only")
	expect(t, "one of two dropped", c.put(sig2, signed("alice", "alice")), http.StatusForbidden, "append-only")
	expect(t, "a third added", c.put(sig2, signed("alice", "bob", "carol")), http.StatusCreated, "")

	// A user name nobody authenticated is not recorded.
	req, _ := http.NewRequest(http.MethodPut, c.base+"/manifests/claimed", bytes.NewReader(a))
	req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
	req.SetBasicAuth("release-manager", "whatever")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT with a claimed user: %v %v", resp, err)
	}
	// Repository names that look like routes are audited as what they are.
	odd := newClient(t, srv.Addr(), "x/blobs/uploads")
	expect(t, "a repository named x/blobs/uploads", odd.put("latest", odd.manifest("odd")), http.StatusCreated, "")
	refs := newClient(t, srv.Addr(), "x/referrers")
	expect(t, "tags of a repository named x/referrers", refs.do(http.MethodGet, "/tags/list", nil), http.StatusNotFound, "NAME_UNKNOWN")
	// The referrers API takes repository names, not paths.
	req, _ = http.NewRequest(http.MethodGet, "http://"+srv.Addr()+"/", nil)
	req.URL.Opaque = "//" + srv.Addr() + "/v2/workflows/%2E%2E/build/referrers/" + da.String()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noRedirect.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		t.Fatal("a referrers path with .. was answered")
	}

	// Metrics count the denials by rule.
	resp, err = http.Get("http://" + srv.MetricsAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`ociwf_registry_requests_total{code="403",method="PUT"}`, `ociwf_registry_requests_total{code="201",method="PUT"}`, `ociwf_registry_denials_total{rule="semver"} 5`, `ociwf_registry_denials_total{rule="cosign-accessories"} 3`, "ociwf_registry_audit_entries_total"} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The audit log chains every mutating request, denials included.
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := audit.Verify(bytes.NewReader(raw))
	if err != nil || rep.Broken != nil || rep.Denied != 8 {
		t.Fatalf("audit: %+v %v", rep, err)
	}
	if !bytes.Contains(raw, []byte(`"operation":"tag-delete","digest":"`+da.String()+`","tag":"1.0.0","status":403,"outcome":"denied","rule":"semver"`)) {
		t.Fatalf("no denied tag-delete entry in\n%s", raw)
	}
	if bytes.Contains(raw, []byte("release-manager")) || !bytes.Contains(raw, []byte(`"actor":"127.0.0.1","repository":"workflows/build","operation":"manifest-put","digest":"`+da.String()+`","tag":"claimed"`)) {
		t.Fatalf("claimed user recorded, or the PUT missing:\n%s", raw)
	}
	if !bytes.Contains(raw, []byte(`"repository":"x/blobs/uploads","operation":"manifest-put"`)) {
		t.Fatalf("x/blobs/uploads audited wrongly:\n%s", raw)
	}
}

// Racing clients creating one immutable tag with different manifests:
// exactly one wins, every other is refused.
func TestImmutableTagRace(t *testing.T) {
	srv := registrytest.Start(t, registryext.Config{})
	c := newClient(t, srv.Addr(), "workflows/race")
	const n = 50
	ms := make([][]byte, n)
	for i := range ms {
		ms[i] = c.manifest(fmt.Sprintf("layer %d", i))
	}
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range ms {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = c.put("3.0.0", ms[i]).status
		}()
	}
	close(start)
	wg.Wait()
	won := -1
	for i, s := range statuses {
		switch {
		case s == http.StatusCreated && won < 0:
			won = i
		case s == http.StatusCreated:
			t.Fatalf("pushes %d and %d both created the tag", won, i)
		case s != http.StatusForbidden:
			t.Fatalf("push %d: status %d", i, s)
		}
	}
	if won < 0 {
		t.Fatal("no push created the tag")
	}
	if got := c.do(http.MethodGet, "/manifests/3.0.0", nil).body; got != string(ms[won]) {
		t.Fatalf("tag names %s, want the winner's manifest", got)
	}
}

// Protection reaches through nested indexes and referrers: tag 2.0.0 →
// index → index → manifest → layer, and a signature of the manifest.
func TestDeepProtection(t *testing.T) {
	srv := registrytest.Start(t, registryext.Config{})
	c := newClient(t, srv.Addr(), "workflows/deep")
	leaf := c.manifest("leaf layer")
	expect(t, "push the leaf", c.put(digest.FromBytes(leaf).String(), leaf), http.StatusCreated, "")
	index := func(child []byte) []byte {
		idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(child), Size: int64(len(child))}}}
		idx.SchemaVersion = 2
		b, _ := json.Marshal(idx)
		b = bytes.Replace(b, []byte(`"mediaType":"application/vnd.oci.image.manifest.v1+json","digest"`), []byte(`"mediaType":"`+childType(child)+`","digest"`), 1)
		return b
	}
	inner := index(leaf)
	expect(t, "push the inner index", c.put(digest.FromBytes(inner).String(), inner), http.StatusCreated, "")
	outer := index(inner)
	expect(t, "tag the outer index", c.put("2.0.0", outer), http.StatusCreated, "")
	sig := c.referrer(leaf, "application/vnd.dev.cosign.artifact.sig.v1+json", "signature")
	expect(t, "sign the leaf", c.put(digest.FromBytes(sig).String(), sig), http.StatusCreated, "")

	expect(t, "delete the leaf's layer", c.do(http.MethodDelete, "/blobs/"+digest.FromString("leaf layer").String(), nil), http.StatusForbidden, "tag 2.0.0")
	expect(t, "delete the leaf", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(leaf).String(), nil), http.StatusForbidden, "tag 2.0.0")
	expect(t, "delete the inner index", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(inner).String(), nil), http.StatusForbidden, "tag 2.0.0")
	expect(t, "delete the leaf's signature", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(sig).String(), nil), http.StatusForbidden, "tag 2.0.0")
	expect(t, "delete the signature's layer", c.do(http.MethodDelete, "/blobs/"+digest.FromString("signature").String(), nil), http.StatusForbidden, "tag 2.0.0")

	// Unprotected content still goes.
	loose := c.manifest("loose")
	expect(t, "push a loose manifest", c.put(digest.FromBytes(loose).String(), loose), http.StatusCreated, "")
	expect(t, "delete it", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(loose).String(), nil), http.StatusAccepted, "")
}

// childType is the media type of a manifest or index.
func childType(b []byte) string {
	var m struct{ MediaType string }
	json.Unmarshal(b, &m)
	return m.MediaType
}
