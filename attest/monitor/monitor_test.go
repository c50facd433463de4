package monitor_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/monitor"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// env is a registry extension with its storage root and two signed
// versions of host/wf/mon, signed by key.
type env struct {
	root, repo string
	signer     *accessory.Signer
	pol        *trust.Policy
	subjects   map[string]accessory.Subject
	verifier   *verify.Verifier
	recorder   *govern.Recorder
}

func newEnv(t *testing.T) *env {
	t.Helper()
	root := t.TempDir()
	srv := registrytest.Start(t, registryext.Config{Root: root, Rules: &immutability.Rules{Version: immutability.Version, Accessories: immutability.Mutable}})
	o := attesttest.Opener(t)
	key, pub := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)
	repo := srv.Addr() + "/wf/mon"
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	e := &env{root: root, repo: repo, signer: s, subjects: map[string]accessory.Subject{}}
	for tag, name := range map[string]string{"1.0.0": "build-test-release.yaml", "2.0.0": "fan-out-fan-in.yaml"} {
		_, subj := attesttest.Push(t, o, repo+":"+tag, name)
		if _, err := reg.Sign(context.Background(), s, subj, accessory.SignOptions{}); err != nil {
			t.Fatal(err)
		}
		e.subjects[tag] = subj
	}
	e.pol = trust.KeyPolicy(pub, repo, trust.KeyPolicyOptions{SignatureOnly: true})
	v, err := verify.New(e.pol, o, verify.Options{StateStore: lifecycle.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	e.verifier = v
	if e.recorder, err = govern.New(v, reg, govern.Options{}); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) blobPath(d digest.Digest) string {
	return filepath.Join(e.root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

// sourceBlob returns the path of a version's source layer.
func (e *env) sourceBlob(t *testing.T, tag string) string {
	t.Helper()
	raw, err := os.ReadFile(e.blobPath(e.subjects[tag].Digest))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ociwf.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	return e.blobPath(m.Source.Digest)
}

// receiver is a webhook receiver that fails its first request with 503.
type receiver struct {
	mu       sync.Mutex
	attempts int
	alerts   []monitor.Alert
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.attempts++
	if rc.attempts == 1 {
		http.Error(w, "not yet", http.StatusServiceUnavailable)
		return
	}
	var got []monitor.Alert
	if err := json.NewDecoder(r.Body).Decode(&got); err != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad alert", http.StatusBadRequest)
		return
	}
	rc.alerts = append(rc.alerts, got...)
}

// One pass over a repository with one altered blob: the version fails the
// blobs check, is logged at ERROR, posted to the webhook after a retry,
// quarantined, and written to a results log that verifies; the other
// version passes.
func TestPassAltersBlob(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	p := e.sourceBlob(t, "2.0.0")
	orig, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	altered := bytes.Clone(orig)
	altered[len(altered)/2] ^= 1
	if err := os.WriteFile(p, altered, 0o644); err != nil {
		t.Fatal(err)
	}

	rc := &receiver{}
	srv := httptest.NewServer(rc)
	defer srv.Close()
	hook, err := monitor.NewWebhook(srv.URL+"/api/v2/alerts", monitor.WebhookOptions{MinWait: time.Millisecond, MaxWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(t.TempDir(), "results.jsonl")
	results, err := audit.Open(logPath)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	metrics := monitor.NewMetrics()
	var progress []monitor.Result // what Progress was told in the last pass, in order
	m, err := monitor.New(e.verifier, []string{e.repo}, monitor.Options{
		Results: results, Alerters: []monitor.Alerter{hook}, Metrics: metrics, Jitter: time.Millisecond,
		Quarantine: monitor.Recorder{Recorder: e.recorder, Signer: e.signer, Actor: "monitor"},
		Logger:     slog.New(slog.NewJSONHandler(&logs, nil)),
		Progress: func(done, total int, r monitor.Result) {
			if done == 1 {
				progress = nil // a new pass
			}
			progress = append(progress, r)
			if done != len(progress) || total != 2 {
				t.Errorf("Progress(%d, %d) after %d calls", done, total, len(progress)-1)
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := m.Pass(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer results.Close()
	bad := e.subjects["2.0.0"]
	fails := sum.Failures()
	if sum.Versions != 2 || sum.Checked != 2 || sum.Passed != 1 || sum.Failed != 1 || len(fails) != 1 ||
		fails[0].Check != verify.CheckBlobs || fails[0].Digest != bad.Digest.String() || fails[0].Tag != "2.0.0" || !fails[0].Quarantined {
		t.Fatalf("summary %+v", sum)
	}
	// Progress saw each check once, the failure already quarantined.
	if len(progress) != 2 {
		t.Fatalf("Progress was called %d times, want 2", len(progress))
	}
	for _, r := range progress {
		if r.Tag == "2.0.0" && (r.Outcome != monitor.Failed || !r.Quarantined) || r.Tag != "2.0.0" && r.Outcome != monitor.OK {
			t.Fatalf("Progress saw %+v", r)
		}
	}

	// The alert line.
	var line struct {
		Level, Msg, Version, Check, Reason string
		Time                               time.Time
	}
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if strings.Contains(l, `"msg":"integrity check failed"`) {
			if err := json.Unmarshal([]byte(l), &line); err != nil {
				t.Fatal(err)
			}
		}
	}
	if line.Level != "ERROR" || !line.Time.Equal(fails[0].Time) || line.Version != e.repo+"@"+bad.Digest.String() || line.Check != "blobs" || line.Reason == "" {
		t.Fatalf("alert line %+v in %s", line, logs.String())
	}

	// The webhook, retried once.
	rc.mu.Lock()
	if rc.attempts != 2 || len(rc.alerts) != 1 {
		t.Fatalf("webhook: %d attempts, alerts %+v", rc.attempts, rc.alerts)
	}
	a := rc.alerts[0]
	if a.Labels["alertname"] != monitor.AlertName || a.Labels["repository"] != e.repo || a.Labels["digest"] != bad.Digest.String() ||
		a.Labels["tag"] != "2.0.0" || a.Labels["check"] != "blobs" || a.Annotations["summary"] == "" || a.StartsAt.IsZero() {
		t.Fatalf("alert %+v", a)
	}
	rc.mu.Unlock()

	// The results log.
	f, _ := os.Open(logPath)
	rep, err := audit.Verify(f)
	f.Close()
	if err != nil || rep.Broken != nil || rep.Checks != 2 || rep.CheckFailures != 1 {
		t.Fatalf("results log: %v %+v", err, rep)
	}

	// The metrics.
	if n := metric(t, metrics, "ociwf_monitor_failures_total", "check", "blobs"); n != 1 {
		t.Fatalf("failures{check=blobs} = %v", n)
	}
	if n := metric(t, metrics, "ociwf_monitor_checks_total", "outcome", "ok"); n != 1 {
		t.Fatalf("checks{outcome=ok} = %v", n)
	}
	if n := metric(t, metrics, "ociwf_monitor_versions", "state", "published"); n != 1 {
		t.Fatalf("versions{state=published} = %v", n)
	}

	// The quarantine: restored, the version is still refused until
	// released.
	st, err := e.verifier.Lifecycle(ctx, e.repo+":2.0.0")
	if err != nil || st.State != lifecycle.Quarantined {
		t.Fatalf("lifecycle after the pass: %v %+v", err, st)
	}
	if err := os.WriteFile(p, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.verifier.Fetch(ctx, e.repo+":2.0.0"); !errors.Is(err, errdef.ErrLifecycle) {
		t.Fatalf("Fetch of the restored, quarantined version: %v", err)
	}
	// A second pass names the quarantine and records no second event.
	sum, err = m.Pass(ctx)
	if err != nil || sum.Failed != 1 || sum.Failures()[0].Check != verify.CheckLifecycle || sum.Failures()[0].Quarantined {
		t.Fatalf("second pass: %v %+v", err, sum)
	}
	if _, err := e.recorder.Release(ctx, e.repo+":2.0.0", e.signer, govern.EventOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.verifier.Fetch(ctx, e.repo+":2.0.0"); err != nil {
		t.Fatalf("Fetch after the release: %v", err)
	}
}

// metric returns the value of the sample of family name with label
// value, or -1.
func metric(t *testing.T, m *monitor.Metrics, name, label, value string) float64 {
	t.Helper()
	fams, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					if c := s.GetCounter(); c != nil {
						return c.GetValue()
					}
					return s.GetGauge().GetValue()
				}
			}
		}
	}
	return -1
}

// A sample of 1 checks one version per pass; Run passes until cancelled
// and returns nil.
func TestSampleAndRun(t *testing.T) {
	e := newEnv(t)
	m, err := monitor.New(e.verifier, []string{e.repo}, monitor.Options{Sample: 1, Rand: rand.New(rand.NewPCG(1, 2))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	passes := 0
	err = m.Run(ctx, 10*time.Millisecond, func(s *monitor.Summary) {
		if s.Versions != 2 || s.Checked != 1 || s.Passed != 1 {
			t.Errorf("pass %+v", s)
		}
		if passes++; passes == 3 {
			cancel()
		}
	})
	if err != nil || passes != 3 {
		t.Fatalf("Run: %v after %d passes", err, passes)
	}
	if _, err := monitor.New(e.verifier, nil, monitor.Options{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("no repositories: %v", err)
	}
}

// The webhook gives up at once on a 4xx, and after MaxRetries on 5xx;
// a URL that is not http(s) is refused.
func TestWebhookGivesUp(t *testing.T) {
	var mu sync.Mutex
	calls := map[string]int{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		calls[r.URL.Path]++
		mu.Unlock()
		if r.URL.Path == "/bad" {
			http.Error(w, "no", http.StatusBadRequest)
			return
		}
		http.Error(w, "down", http.StatusBadGateway)
	}))
	defer srv.Close()
	r := monitor.Result{Repository: "r", Tag: "1", Outcome: monitor.Failed, Check: "blobs", Time: time.Now()}
	for path, want := range map[string]int{"/bad": 1, "/down": 3} {
		hook, err := monitor.NewWebhook(srv.URL+path, monitor.WebhookOptions{MaxRetries: 2, MinWait: time.Millisecond, MaxWait: 2 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := hook.Alert(context.Background(), r); err == nil {
			t.Fatalf("%s: delivered", path)
		}
		mu.Lock()
		if calls[path] != want {
			t.Errorf("%s: %d attempts, want %d", path, calls[path], want)
		}
		mu.Unlock()
	}
	if _, err := monitor.NewWebhook("ftp://x", monitor.WebhookOptions{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("ftp URL: %v", err)
	}
}

// A version refused only for its lifecycle state (retired, under the
// default rules) passed every integrity check: it is not an integrity
// failure, and the pass says why it is refused.
func TestRetiredVersionIsNotAnIntegrityFailure(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.recorder.Transition(ctx, e.repo+":1.0.0", e.signer, lifecycle.Retired, govern.EventOptions{Reason: "end of support"}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.verifier.Fetch(ctx, e.repo+":1.0.0"); !errors.Is(err, errdef.ErrLifecycle) {
		t.Fatalf("Fetch of the retired version: %v", err)
	}
	m, err := monitor.New(e.verifier, []string{e.repo}, monitor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := m.Pass(ctx)
	if err != nil || sum.Failed != 0 || sum.Passed != 2 {
		t.Fatalf("pass: %v %+v", err, sum)
	}
	for _, r := range sum.Results {
		if r.Tag == "1.0.0" && (r.State != lifecycle.Retired || !strings.Contains(r.Reason, "content intact") || !strings.Contains(r.Reason, "retired")) {
			t.Errorf("retired version: %+v", r)
		}
	}
	// Its content altered, it fails as any version does.
	if err := os.WriteFile(e.sourceBlob(t, "1.0.0"), []byte("altered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if sum, err := m.Pass(ctx); err != nil || sum.Failed != 1 || sum.Failures()[0].Check != verify.CheckBlobs {
		t.Fatalf("pass over the altered retired version: %v %+v", err, sum)
	}
}
