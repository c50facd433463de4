package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/monitor"
	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// The acceptance test of the integrity monitor: on a repository of the
// registry extension with one blob altered in storage, monitor --once
// exits 3 naming the version and the blobs check, posts the alert to a
// loopback receiver (after a failed first attempt), writes a results log
// that ociwf audit verify accepts and a quarantine event that keeps
// verify.Fetch refusing the version after the blob is restored, until
// ociwf lifecycle release.
func TestMonitorOnceAcceptance(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	root := t.TempDir()
	host := registrytest.NewAt(t, root)
	repo := host + "/workflows/monitored"
	digests := map[string]digest.Digest{}
	for tag, sample := range map[string]string{"1.4.0": "build-test-release.yaml", "2.0.1": "fan-out-fan-in.yaml"} {
		d := pushDraft(t, sample, repo)
		if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", "--builder-id", "https://ci.example/b", repo+"@"+d.String(), "--tag", tag); code != 0 {
			t.Fatalf("publish %s: %s", tag, stderr)
		}
		digests[tag] = d
	}
	blobPath := func(d digest.Digest) string {
		return filepath.Join(root, "docker/registry/v2/blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
	}
	raw, err := os.ReadFile(blobPath(digests["2.0.1"]))
	if err != nil {
		t.Fatal(err)
	}
	m, err := ociwf.ParseManifest(raw)
	if err != nil {
		t.Fatal(err)
	}
	src := blobPath(m.Source.Digest)
	orig, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	altered := []byte(strings.Replace(string(orig), "name:", "nama:", 1))
	if err := os.WriteFile(src, altered, 0o644); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	attempts := 0
	var alerts []monitor.Alert
	receiver := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if attempts++; attempts == 1 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		var got []monitor.Alert
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		alerts = append(alerts, got...)
	}))
	defer receiver.Close()

	results := filepath.Join(t.TempDir(), "monitor.jsonl")
	bad := repo + "@" + digests["2.0.1"].String()
	out, stderr, code := runCLI(t, "monitor", "--plain-http", "--key", keys+".pub", "--once", "--all", "--webhook", receiver.URL+"/api/v2/alerts",
		"--quarantine-key", keys+".key", "--results-log", results, "--output", "json", repo)
	var sum struct {
		Checked, Passed, Failed int
		Results                 []monitor.Result
		Error                   string
		ExitCode                int
	}
	if code != cli.ExitVerification || json.Unmarshal([]byte(out), &sum) != nil || sum.ExitCode != cli.ExitVerification ||
		sum.Checked != 2 || sum.Passed != 1 || sum.Failed != 1 || !strings.Contains(sum.Error, bad) || !strings.Contains(sum.Error, "blobs check") {
		t.Fatalf("monitor --once: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(stderr, `"level":"ERROR","msg":"integrity check failed","version":"`+bad+`","tag":"2.0.1","check":"blobs"`) {
		t.Fatalf("no alert line on stderr:\n%s", stderr)
	}
	for _, r := range sum.Results {
		if r.Tag == "2.0.1" && (r.Check != verify.CheckBlobs || !r.Quarantined) {
			t.Fatalf("result %+v", r)
		}
	}
	mu.Lock()
	if attempts != 2 || len(alerts) != 1 || alerts[0].Labels["digest"] != digests["2.0.1"].String() || alerts[0].Labels["check"] != "blobs" ||
		alerts[0].Labels["alertname"] != "OciwfIntegrityFailure" {
		t.Fatalf("receiver: %d attempts, %+v", attempts, alerts)
	}
	mu.Unlock()

	out, stderr, code = runCLI(t, "audit", "verify", results)
	if code != 0 || !strings.Contains(out, "2 entries, chain intact; 0 policy violations (denied requests); 2 monitor checks, 1 failed") {
		t.Fatalf("audit verify: exit %d %s %s", code, out, stderr)
	}

	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	pol := trust.KeyPolicy(keys+".pub", repo, trust.KeyPolicyOptions{})
	v, err := verify.New(pol, o, verify.Options{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Lifecycle(ctx, bad)
	if err != nil || st.State != lifecycle.Quarantined || !strings.Contains(st.Last().Event.Reason, "blobs check failed") {
		t.Fatalf("lifecycle after the monitor: %v %+v", err, st)
	}
	if err := os.WriteFile(src, orig, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify.Fetch(ctx, bad, pol, o, verify.Options{}); !errors.Is(err, errdef.ErrLifecycle) {
		t.Fatalf("Fetch of the restored, quarantined version: %v", err)
	}
	if _, stderr, code := runCLI(t, "lifecycle", "release", "--plain-http", "--key", keys+".key", "--reason", "blob restored", repo+":2.0.1"); code != 0 {
		t.Fatalf("release: exit %d %s", code, stderr)
	}
	if _, _, err := verify.Fetch(ctx, bad, pol, o, verify.Options{}); err != nil {
		t.Fatalf("Fetch after the release: %v", err)
	}
	if out, stderr, code := runCLI(t, "monitor", "--plain-http", "--key", keys+".pub", "--once", "--results-log", results, repo); code != 0 {
		t.Fatalf("monitor after the release: exit %d %s %s", code, out, stderr)
	}
	if _, _, code := runCLI(t, "monitor", "--key", "k.pub", "--sample", "2", "--all", repo); code != cli.ExitUsage {
		t.Fatalf("--sample with --all: exit %d", code)
	}
}

var okChecks = regexp.MustCompile(`(?m)^ociwf_monitor_checks_total\{outcome="ok"\} (\d+)$`)

// The long-running mode passes every --interval, serves its metrics on
// --metrics-addr, and exits 0 when its context ends (as on SIGTERM).
func TestMonitorLongRunning(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	host := registrytest.New(t)
	repo := host + "/workflows/watched"
	d := pushDraft(t, "build-test-release.yaml", repo)
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", "--builder-id", "https://ci.example/b", repo+"@"+d.String(), "--tag", "1.4.0"); code != 0 {
		t.Fatal(stderr)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb bytes.Buffer
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"monitor", "--plain-http", "--key", keys + ".pub", "--interval", "20ms", "--metrics-addr", addr, repo}, strings.NewReader(""), &out, &errb)
	}()
	deadline := time.Now().Add(20 * time.Second)
	var body string
	for time.Now().Before(deadline) {
		if resp, err := http.Get("http://" + addr + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
			if m := okChecks.FindStringSubmatch(body); m != nil && len(m[1]) > 0 && m[1] != "0" && m[1] != "1" && m[1] != "2" {
				break
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if m := okChecks.FindStringSubmatch(body); m == nil || m[1] == "0" || m[1] == "1" || m[1] == "2" {
		t.Fatalf("fewer than 3 passes:\n%s", body)
	}
	for _, want := range []string{`ociwf_monitor_versions{state="published"} 1`, "ociwf_monitor_check_duration_seconds_count", "ociwf_monitor_seconds_since_last_full_pass"} {
		if !strings.Contains(body, want) {
			t.Fatalf("metrics without %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "ociwf_monitor_seconds_since_last_full_pass -1") {
		t.Fatalf("no full pass recorded:\n%s", body)
	}
	if !strings.Contains(out.String(), "pass: 1 of 1 versions checked, 1 passed, 0 failed, 0 errors") {
		t.Fatalf("stdout %s", out.String())
	}

	// With --output json, one document when it ends.
	ctx, cancel = context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	out.Reset()
	if code := run(ctx, []string{"monitor", "--plain-http", "--key", keys + ".pub", "--interval", "50ms", "--output", "json", repo}, strings.NewReader(""), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var doc struct {
		Passes int
		Last   struct{ Passed int }
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc.Passes < 1 || doc.Last.Passed != 1 {
		t.Fatalf("json: %v %s", err, out.String())
	}
}
