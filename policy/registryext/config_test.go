package registryext_test

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// A Distribution configuration file with htpasswd auth: Distribution
// authenticates every request, the referrers API included, and the audit
// log names the user.
func TestDistributionConfigWithAuth(t *testing.T) {
	dir := t.TempDir()
	conf := authConfig(t, dir, map[string]string{"ci": "s3cret"})
	log := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{Distribution: conf, AuditLog: log})
	base := "http://" + srv.Addr() + "/v2/"

	get := func(path string, auth bool) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, base+path, nil)
		if auth {
			req.SetBasicAuth("ci", "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ref := "workflows/a/referrers/" + digest.FromString("x").String()
	if got := get("", false); got != http.StatusUnauthorized {
		t.Fatalf("anonymous /v2/: %d", got)
	}
	if got := get(ref, false); got != http.StatusUnauthorized {
		t.Fatalf("anonymous referrers: %d", got)
	}
	if got := get(ref, true); got != http.StatusOK {
		t.Fatalf("authenticated referrers: %d", got)
	}

	c := newClient(t, srv.Addr(), "workflows/a")
	c.repo.Client = authClient{}
	m := c.manifest("a")
	req, _ := http.NewRequest(http.MethodPut, base+"workflows/a/manifests/1.0.0", strings.NewReader(string(m)))
	req.Header.Set("Content-Type", "application/vnd.oci.image.manifest.v1+json")
	req.SetBasicAuth("ci", "s3cret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("authenticated push: %v %v", resp, err)
	}
	resp.Body.Close()
	raw, _ := os.ReadFile(log)
	if rep, err := audit.Verify(strings.NewReader(string(raw))); err != nil || rep.Broken != nil || !strings.Contains(string(raw), `"actor":"ci","repository":"workflows/a","operation":"manifest-put"`) {
		t.Fatalf("audit %+v %v\n%s", rep, err, raw)
	}
}

// authClient sends basic auth on every request, for oras-go's blob pushes.
type authClient struct{}

func (authClient) Do(req *http.Request) (*http.Response, error) {
	req.SetBasicAuth("ci", "s3cret")
	return http.DefaultClient.Do(req)
}

// A pull-through cache tags beneath the middleware; it is refused.
func TestProxyConfigRefused(t *testing.T) {
	conf, err := configuration.Parse(strings.NewReader("version: 0.1\nstorage:\n  inmemory: {}\nproxy:\n  remoteurl: https://registry.example.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", Distribution: conf}); err == nil || !strings.Contains(err.Error(), "pull-through cache") {
		t.Fatalf("proxy configuration: %v", err)
	}
}
