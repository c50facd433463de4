package registryext_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote/auth"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// newAuthClient is newClient authenticating as user.
func newAuthClient(t *testing.T, host, name, user, password string) *client {
	t.Helper()
	c := newClient(t, host, name)
	c.user, c.password = user, password
	c.repo.Client = &auth.Client{Credential: auth.StaticCredential(host, auth.Credential{Username: user, Password: password})}
	return c
}

// request sends method on path with extra headers and returns the status,
// headers and body.
func (c *client) request(method, path string, header map[string]string) (int, http.Header, string) {
	c.t.Helper()
	req, _ := http.NewRequest(method, c.base+path, nil)
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+", "+ocispec.MediaTypeImageIndex)
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// stateStub answers the lifecycle state of versions from a map, counting
// the calls per digest; broken digests fail.
type stateStub struct {
	mu     sync.Mutex
	states map[digest.Digest]lifecycle.State
	broken map[digest.Digest]bool
	calls  map[digest.Digest]int
}

func (s *stateStub) state(_ context.Context, repo string, d digest.Digest) (lifecycle.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[d]++
	if s.broken[d] {
		return "", errors.New("the trust policy could not be read")
	}
	return s.states[d], nil
}

func (s *stateStub) called(d digest.Digest) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[d]
}

func (s *stateStub) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.calls {
		n += c
	}
	return n
}

// Pulls of a retired version are refused, by tag and by digest, GET and
// HEAD, conditional or not, with 403 DENIED naming the state and how to
// name compliance readers, and audited; a named reader pulls it, audited
// too; its accessories and other versions are pulled as before; a state
// that cannot be told refuses the pull with 503; states are cached until
// the repository changes.
func TestLifecyclePullRule(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "audit.jsonl")
	conf := authConfig(t, dir, map[string]string{"ci": "ci-pw", "auditor": "auditor-pw"})
	stub := &stateStub{states: map[digest.Digest]lifecycle.State{}, broken: map[digest.Digest]bool{}, calls: map[digest.Digest]int{}}
	srv := registrytest.Start(t, registryext.Config{Distribution: conf, AuditLog: log,
		Lifecycle: &registryext.LifecycleReads{Readers: []string{"auditor"}, State: stub.state}})
	host, repo := srv.Addr(), "workflows/pulled"
	ci := newAuthClient(t, host, repo, "ci", "ci-pw")
	auditor := newAuthClient(t, host, repo, "auditor", "auditor-pw")

	retired := ci.manifest("retired version")
	rd := digest.FromBytes(retired)
	expect(t, "push the retired version", ci.put("1.0.0", retired), http.StatusCreated, "")
	published := ci.manifest("published version")
	pd := digest.FromBytes(published)
	expect(t, "push a published version", ci.put("1.1.0", published), http.StatusCreated, "")
	unknown := ci.manifest("version of unknown state")
	ud := digest.FromBytes(unknown)
	expect(t, "push another version", ci.put("1.2.0", unknown), http.StatusCreated, "")
	stub.states[rd], stub.states[pd], stub.broken[ud] = lifecycle.Retired, lifecycle.Published, true

	// Its accessories, as accessory.Registry writes them.
	s := testSigner(t)
	cred := auth.StaticCredential(host, auth.Credential{Username: "ci", Password: "ci-pw"})
	reg := accessory.NewRegistry(accessory.NewClient(accessory.ClientOptions{PlainHTTP: []string{host}, Credential: cred}), accessory.RegistryOptions{Format: accessory.FormatBoth})
	subj := accessory.Subject{Repository: host + "/" + repo, Digest: rd}
	ctx := context.Background()
	if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: lifecycle.EventPredicateType, Predicate: []byte(`{"state":"retired"}`)}); err != nil {
		t.Fatal(err)
	}
	before := stub.total()

	for _, ref := range []string{"1.0.0", rd.String()} {
		status, h, body := ci.request(http.MethodGet, "/manifests/"+ref, nil)
		if status != http.StatusForbidden || !strings.Contains(body, `"code":"DENIED"`) || !strings.Contains(body, "is retired (cannot_be_used)") ||
			!strings.Contains(body, "compliance readers can be named") || !strings.Contains(body, `"rule":"lifecycle-pulls"`) || h.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s as ci: %d %s", ref, status, body)
		}
		// A HEAD gives the descriptor, which attaching accessories needs.
		if status, h, _ := ci.request(http.MethodHead, "/manifests/"+ref, nil); status != http.StatusOK || h.Get("Docker-Content-Digest") != rd.String() {
			t.Fatalf("HEAD %s as ci: %d", ref, status)
		}
	}
	if status, _, _ := ci.request(http.MethodGet, "/manifests/"+rd.String(), map[string]string{"If-None-Match": `"` + rd.String() + `"`}); status != http.StatusForbidden {
		t.Errorf("conditional GET as ci: %d, want 403", status)
	}
	lines := auditLines(t, log)
	entryOf(t, lines, `"actor":"ci"`, `"operation":"manifest-get","digest":"`+rd.String()+`","tag":"1.0.0","status":403,"outcome":"denied","rule":"lifecycle-pulls"`)
	if n := strings.Count(strings.Join(lines, "\n"), `"actor":"ci","repository":"`+repo+`","operation":"manifest-get","digest":"`+rd.String()+`","asked":"`+rd.String()+`","status":403,"outcome":"denied"`); n != 2 {
		t.Errorf("%d denied GETs by digest audited, want 2 (one conditional)", n)
	}
	if strings.Contains(strings.Join(lines, "\n"), "manifest-head") {
		t.Error("a HEAD is audited")
	}

	// A reader pulls it; so does everyone its accessories, and other
	// versions.
	if status, _, body := auditor.request(http.MethodGet, "/manifests/1.0.0", nil); status != http.StatusOK || body != string(retired) {
		t.Fatalf("GET as auditor: %d %s", status, body)
	}
	entryOf(t, auditLines(t, log), `"actor":"auditor"`, `"operation":"manifest-get","digest":"`+rd.String()+`","tag":"1.0.0","status":200,"outcome":"ok","rule":"lifecycle-pulls","message":"retired `+rd.String()+` of `+repo+` read by compliance reader auditor"`)
	for _, ref := range []string{"sha256-" + rd.Encoded() + ".sig", "sha256-" + rd.Encoded() + ".att", "1.1.0", pd.String()} {
		if status, _, body := ci.request(http.MethodGet, "/manifests/"+ref, nil); status != http.StatusOK {
			t.Errorf("GET %s as ci: %d %s", ref, status, body)
		}
	}
	status, _, body := ci.request(http.MethodGet, "/referrers/"+rd.String(), nil)
	var idx ocispec.Index
	if err := json.Unmarshal([]byte(body), &idx); status != http.StatusOK || err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("referrers of the retired version: %d %v %s", status, err, body)
	}
	for _, d := range idx.Manifests {
		if status, _, body := ci.request(http.MethodGet, "/manifests/"+d.Digest.String(), nil); status != http.StatusOK {
			t.Errorf("GET referrer %s as ci: %d %s", d.Digest, status, body)
		}
	}
	if n := stub.total() - before; n != 2 {
		t.Errorf("%d state lookups, want 2 (the retired version once, the published one once): accessories are not looked up and states are cached", n)
	}

	// A state that cannot be told: 503 for all but readers.
	status, _, body = ci.request(http.MethodGet, "/manifests/1.2.0", nil)
	if status != http.StatusServiceUnavailable || !strings.Contains(body, `"code":"UNAVAILABLE"`) || !strings.Contains(body, "could not be determined") || strings.Contains(body, "trust policy could not be read") {
		t.Errorf("GET of a version of unknown state as ci: %d %s", status, body)
	}
	if status, _, _ := auditor.request(http.MethodGet, "/manifests/1.2.0", nil); status != http.StatusOK {
		t.Errorf("GET of a version of unknown state as auditor: %d", status)
	}
	// Without credentials: 401, as for any pull, telling nothing.
	if status, _, body := newClient(t, host, repo).request(http.MethodGet, "/manifests/1.0.0", nil); status != http.StatusUnauthorized || strings.Contains(body, "retired") {
		t.Errorf("anonymous GET: %d %s", status, body)
	}

	// A PUT in another repository keeps the cache; one in this
	// repository drops it: the next pull looks the state up again.
	other := newAuthClient(t, host, "workflows/other", "ci", "ci-pw")
	expect(t, "push elsewhere", other.put("latest", other.manifest("elsewhere")), http.StatusCreated, "")
	ci.request(http.MethodGet, "/manifests/1.0.0", nil)
	if n := stub.called(rd); n != 1 {
		t.Errorf("%d lookups of the retired version after a push elsewhere, want 1", n)
	}
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: lifecycle.EventPredicateType, Predicate: []byte(`{"state":"archived"}`), Duplicates: accessory.Append}); err != nil {
		t.Fatal(err)
	}
	stub.mu.Lock()
	stub.states[rd] = lifecycle.Archived
	stub.mu.Unlock()
	status, _, body = ci.request(http.MethodGet, "/manifests/1.0.0", nil)
	if status != http.StatusForbidden || !strings.Contains(body, "is archived (compliance_access_only)") || stub.called(rd) != 2 {
		t.Errorf("GET after a new event: %d %s, %d lookups", status, body, stub.called(rd))
	}
}

// A rule without a state source, or naming a state that does not exist,
// is refused at start.
func TestLifecyclePullRuleConfig(t *testing.T) {
	for name, lc := range map[string]*registryext.LifecycleReads{
		"no state source": {Policy: "trust.yaml"},
		"unknown state":   {States: []lifecycle.State{"gone"}, State: func(context.Context, string, digest.Digest) (lifecycle.State, error) { return "", nil }},
		"empty reader":    {Readers: []string{""}, State: func(context.Context, string, digest.Digest) (lifecycle.State, error) { return "", nil }},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", Lifecycle: lc})
			if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "lifecycle pull rule") {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// The ociwf section of a configuration file sets the rule up; the policy
// is found beside the file; mistakes are named.
func TestParseConfigLifecycle(t *testing.T) {
	dir := t.TempDir()
	base := "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  secret: s\n"
	file := filepath.Join(dir, "registry.yml")
	if err := os.WriteFile(file, []byte(base+"ociwf:\n  lifecycle:\n    restrictPulls: [deprecated, retired, archived]\n    readers: [auditor, compliance-bot]\n    policy: trust-policy.yaml\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := registryext.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	lc := cfg.Lifecycle
	if cfg.Distribution == nil || cfg.Distribution.Storage.Type() != "inmemory" || lc == nil ||
		strings.Join([]string{string(lc.States[0]), string(lc.States[2])}, ",") != "deprecated,archived" || len(lc.States) != 3 ||
		strings.Join(lc.Readers, ",") != "auditor,compliance-bot" || lc.Policy != filepath.Join(dir, "trust-policy.yaml") || lc.State != nil {
		t.Fatalf("parsed %+v %+v", cfg, lc)
	}
	cfg, err = registryext.ParseConfig("/etc/ociwf/registry.yml", []byte(base+"ociwf:\n  lifecycle:\n    policy: /srv/trust.yaml\n"))
	if err != nil || cfg.Lifecycle == nil || cfg.Lifecycle.States != nil || cfg.Lifecycle.Policy != "/srv/trust.yaml" {
		t.Fatalf("defaults: %+v %v", cfg.Lifecycle, err)
	}
	if cfg, err := registryext.ParseConfig("r.yml", []byte(base)); err != nil || cfg.Lifecycle != nil {
		t.Fatalf("no ociwf section: %+v %v", cfg.Lifecycle, err)
	}
	for name, c := range map[string]struct{ text, want string }{
		"unknown key":   {"ociwf:\n  lifecycle:\n    restrictPull: [retired]\n    policy: p.yaml\n", "field restrictPull not found"},
		"unknown state": {"ociwf:\n  lifecycle:\n    restrictPulls: [gone]\n    policy: p.yaml\n", `unknown state "gone"`},
		"no policy":     {"ociwf:\n  lifecycle:\n    readers: [auditor]\n", "no policy"},
		"empty reader":  {"ociwf:\n  lifecycle:\n    readers: ['']\n    policy: p.yaml\n", "empty user name"},
		"unknown part":  {"ociwf:\n  lifecycles: {}\n", "field lifecycles not found"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := registryext.ParseConfig("r.yml", []byte(base+c.text))
			if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "r.yml") {
				t.Fatalf("got %v, want %q", err, c.want)
			}
		})
	}
}
