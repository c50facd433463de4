package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registryext"
)

// serve runs ociwf registry serve with args until the test ends and
// returns its address.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	var started struct{ Addr string }
	serveRead(t, func(r *bufio.Reader) error { return json.NewDecoder(r).Decode(&started) }, append([]string{"--addr", "127.0.0.1:0", "--output", "json"}, args...)...)
	return started.Addr
}

func TestRegistryServeRulesAndAudit(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("version: ociwf.dev/immutability/v1\nrules:\n  - name: stable\n    repositories: [\"workflows/**\"]\n    tags: [\"stable\"]\n    mode: immutable\n"), 0o600)
	log := filepath.Join(dir, "audit.jsonl")
	addr := serve(t, "--root", filepath.Join(dir, "data"), "--rules", rules, "--audit-log", log)

	repo, err := remote.NewRepository(addr + "/workflows/cli")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	ctx := context.Background()
	push := func(layer string) ocispec.Descriptor {
		t.Helper()
		l, err := oras.PushBytes(ctx, repo, "application/octet-stream", []byte(layer))
		if err != nil {
			t.Fatal(err)
		}
		m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example", oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := push("a"), push("b")
	if err := repo.Tag(ctx, a, "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, b, "stable"); err == nil || !strings.Contains(err.Error(), "immutable (rule stable)") {
		t.Fatalf("moving stable: %v", err)
	}
	// The rules file replaced the defaults: semver tags move here.
	for _, d := range []ocispec.Descriptor{a, b} {
		if err := repo.Tag(ctx, d, "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := runCLI(t, "audit", "verify", log)
	if code != 0 || !strings.Contains(out, "1 policy violations") {
		t.Fatalf("audit verify: exit %d %s %s", code, out, stderr)
	}
	resp, err := http.Get("http://" + addr + "/v2/workflows/cli/referrers/" + digest.FromString("x").String())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("referrers: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestRegistryServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "rules.yaml")
	os.WriteFile(bad, []byte("version: ociwf.dev/immutability/v1\nrules: [{name: x, mode: frozen}]\n"), 0o600)
	if _, stderr, code := runCLI(t, "registry", "serve", "--addr", "127.0.0.1:0", "--rules", bad); code != cli.ExitError || !strings.Contains(stderr, "rules.yaml") {
		t.Fatalf("bad rules: exit %d %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "registry", "serve", "--config", bad, "--root", dir); code != cli.ExitUsage {
		t.Fatalf("--config with --root: exit %d %s", code, stderr)
	}
}

// ociwf registry gc, run with the registry stopped, keeps the tagged
// manifest and deletes the untagged one and an orphan blob.
func TestRegistryGC(t *testing.T) {
	root := filepath.Join(t.TempDir(), "data")
	srv, err := registryext.New(context.Background(), registryext.Config{Addr: "127.0.0.1:0", Root: root})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	repo, err := remote.NewRepository(srv.Addr() + "/workflows/gc")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	ctx := context.Background()
	for _, tag := range []string{"1.0.0", ""} {
		l, err := oras.PushBytes(ctx, repo, "application/octet-stream", []byte("layer "+tag))
		if err != nil {
			t.Fatal(err)
		}
		opts := oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}}
		if tag != "" {
			opts.ManifestAnnotations = map[string]string{"tag": tag}
		}
		m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example", opts)
		if err != nil {
			t.Fatal(err)
		}
		if tag != "" {
			if err := repo.Tag(ctx, m, tag); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := oras.PushBytes(ctx, repo, "application/octet-stream", []byte("orphan")); err != nil {
		t.Fatal(err)
	}
	if err := srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	for _, dry := range []bool{true, false} {
		args := []string{"registry", "gc", "--root", root, "--delete-untagged", "--output", "json"}
		if dry {
			args = append(args, "--dry-run")
		}
		out, stderr, code := runCLI(t, args...)
		var res registryext.GCResult
		if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
			t.Fatalf("registry gc: exit %d %s %s", code, out, stderr)
		}
		// Deleted: the untagged manifest, its layer and the orphan.
		if res.DryRun != dry || res.ManifestsDeleted != 1 || res.ManifestsKept != 1 || res.ManifestsProtected != 1 || res.BlobsDeleted != 3 {
			t.Fatalf("dry run %v: %s", dry, out)
		}
	}
	if _, _, code := runCLI(t, "registry", "gc", "--root", root, "--config", "x.yml"); code != cli.ExitUsage {
		t.Fatalf("--root with --config: exit %d", code)
	}
}

// The configuration file's ociwf section is read: a misspelt key stops
// the start, naming it; a lifecycle pull rule is not served without a
// lifecycle state source, and the error says so.
func TestRegistryServeOciwfSection(t *testing.T) {
	dir := t.TempDir()
	base := "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  secret: s\nociwf:\n  lifecycle:\n    policy: trust.yaml\n"
	for name, c := range map[string]struct{ extra, want string }{
		"misspelt key": {"    reader: [auditor]\n", "field reader not found"},
		"no policy":    {"    readers: [auditor]\n", "trust.yaml"},
	} {
		t.Run(name, func(t *testing.T) {
			file := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".yml")
			os.WriteFile(file, []byte(base+c.extra), 0o600)
			stdout, _, code := runCLI(t, "registry", "serve", "--addr", "127.0.0.1:0", "--config", file, "--output", "json")
			if code != 1 || !strings.Contains(stdout, c.want) {
				t.Fatalf("exit %d: %s", code, stdout)
			}
		})
	}
}

// With an ociwf.lifecycle section, the registry refuses manifest pulls of
// retired versions (it reads their verified chain from itself), while
// status, which reads only what stays readable, still answers.
func TestRegistryServeRefusesPullsOfRetiredVersions(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", t.TempDir())
	dir := t.TempDir()
	keys := newKeys(t)
	pol := filepath.Join(dir, "trust.yaml")
	os.WriteFile(pol, []byte("version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: all\n    registryScopes: [\"*\"]\n    signers:\n      - {name: ci, key: "+keys+".pub}\n"), 0o600)
	conf := filepath.Join(dir, "config.yml")
	os.WriteFile(conf, []byte("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  secret: s\nociwf:\n  lifecycle:\n    policy: trust.yaml\n"), 0o600)
	addr := serve(t, "--config", conf)
	ref := addr + "/team/build:1.4.0"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", samples+"build-test-release.yaml", ref); code != 0 {
		t.Fatal(stderr)
	}
	if _, stderr, code := runCLI(t, "pull", "--plain-http", "--key", keys+".pub", "-o", t.TempDir(), ref); code != 0 {
		t.Fatalf("pull of the published version: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "lifecycle", "retire", "--plain-http", "--key", keys+".key", "--reason", "CVE-2026-1", ref); code != 0 {
		t.Fatal(stderr)
	}
	resp, err := http.Get("http://" + addr + "/v2/team/build/manifests/1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	body := new(strings.Builder)
	_, _ = bufio.NewReader(resp.Body).WriteTo(body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body.String(), "retired") || !strings.Contains(body.String(), `"rule":"lifecycle-pulls"`) || !strings.Contains(body.String(), `"state":"retired"`) {
		t.Fatalf("GET of a retired version: %d %s", resp.StatusCode, body)
	}
	// verify and pull name the refusal as the lifecycle violation it is.
	out := t.TempDir()
	if _, stderr, code := runCLI(t, "pull", "--plain-http", "--key", keys+".pub", "-o", out, ref); code != cli.ExitImmutable || !strings.Contains(stderr, "is retired (cannot_be_used)") || !strings.Contains(stderr, "the registry refuses pulls") {
		t.Fatalf("pull of the retired version from the restricting registry: exit %d: %s", code, stderr)
	}
	if entries, _ := os.ReadDir(out); len(entries) != 0 {
		t.Fatalf("pull wrote %v", entries)
	}
	if out, stderr, code := runCLI(t, "status", "--plain-http", "--key", keys+".pub", ref); code != 0 || !strings.HasPrefix(out, "state: retired\n") {
		t.Fatalf("status: exit %d: %s %s", code, out, stderr)
	}
}

// --alert-webhook posts an Alertmanager alert for a refused request.
func TestRegistryServeAlertWebhook(t *testing.T) {
	got := make(chan []registryext.Alert, 10)
	rc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var alerts []registryext.Alert
		if err := json.NewDecoder(r.Body).Decode(&alerts); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got <- alerts
	}))
	defer rc.Close()
	dir := t.TempDir()
	addr := serve(t, "--root", filepath.Join(dir, "data"), "--alert-webhook", rc.URL)
	repo, err := remote.NewRepository(addr + "/workflows/alerted")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	ctx := context.Background()
	var descs []ocispec.Descriptor
	for _, layer := range []string{"a", "b"} {
		l, err := oras.PushBytes(ctx, repo, "application/octet-stream", []byte(layer))
		if err != nil {
			t.Fatal(err)
		}
		m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example", oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}})
		if err != nil {
			t.Fatal(err)
		}
		descs = append(descs, m)
	}
	if err := repo.Tag(ctx, descs[0], "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, descs[1], "1.0.0"); err == nil {
		t.Fatal("an immutable tag moved")
	}
	select {
	case alerts := <-got:
		if len(alerts) != 1 || alerts[0].Labels["alertname"] != registryext.AlertName || alerts[0].Labels["repository"] != "workflows/alerted" || alerts[0].Labels["tag"] != "1.0.0" || alerts[0].Labels["rule"] != "semver" {
			t.Fatalf("alerts %+v", alerts)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no alert posted")
	}
	if _, stderr, code := runCLI(t, "registry", "serve", "--addr", "127.0.0.1:0", "--root", dir, "--alert-webhook", "alertmanager:9093"); code != cli.ExitError || !strings.Contains(stderr, "alert webhook") {
		t.Fatalf("bad webhook URL: exit %d %s", code, stderr)
	}
}

// An unknown --coordination mode is a usage error, before anything is
// served.
func TestRegistryServeCoordinationFlag(t *testing.T) {
	_, stderr, code := runCLI(t, "registry", "serve", "--root", t.TempDir(), "--addr", "127.0.0.1:0", "--coordination", "zookeeper")
	if code != cli.ExitUsage || !strings.Contains(stderr, "filesystem") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}

// Without ociwf-registry beside ociwf or on PATH, `ociwf registry` says
// what is missing and how to install it.
func TestRegistryHandOverMissingBinary(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, stderr, code := runCLI(t, "registry", "serve", "--addr", "127.0.0.1:0")
	if code != cli.ExitError || !strings.Contains(stderr, "ociwf-registry is not installed") || !strings.Contains(stderr, "go install ociwf.dev/cmd/ociwf-registry@") {
		t.Fatalf("exit %d, stderr %q; want exit 1 naming the missing binary and how to install it", code, stderr)
	}
}

// startServeToFile starts `ociwf registry serve` as a process of its own
// with its output in a file (so that no closed pipe ends it), killed at
// the end of the test.
func startServeToFile(t *testing.T) (*exec.Cmd, *os.File) {
	t.Helper()
	dir := t.TempDir()
	out, err := os.Create(filepath.Join(dir, "out"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd := exec.Command(os.Args[0], "registry", "serve", "--root", filepath.Join(dir, "root"), "--addr", "127.0.0.1:0")
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, out
}

// The registry ociwf hands over to dies with it, even when ociwf is
// killed with SIGKILL: nothing keeps serving (or holding the storage's
// serving lock) behind a supervisor's back. Its output goes to a file, so
// that no closed pipe ends it instead.
func TestRegistryHandOverDiesWithOciwf(t *testing.T) {
	cmd, out := startServeToFile(t)
	var addr string
	for i := 0; addr == "" && i < 200; i++ {
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(out.Name())
		if _, rest, ok := strings.Cut(string(b), "Serving on http://"); ok {
			addr, _, _ = strings.Cut(rest, " ")
		}
	}
	if addr == "" {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("registry serve did not start: %s", b)
	}
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + addr + "/v2/")
	if err != nil {
		t.Fatalf("registry not answering before the kill: %v", err)
	}
	resp.Body.Close()
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := c.Get("http://" + addr + "/v2/")
		if err != nil {
			return // gone
		}
		resp.Body.Close()
		if time.Now().After(deadline) {
			t.Fatalf("the registry at %s still answers 10s after ociwf was killed", addr)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A registry that dies of a signal makes ociwf exit as a shell reports
// it, 128 + the signal, with nothing printed over the registry's output.
func TestRegistryHandOverSignalExit(t *testing.T) {
	cmd, out := startServeToFile(t)
	// The child is started from a thread of its own (see startChild):
	// look under every thread.
	children := fmt.Sprintf("/proc/%d/task/*/children", cmd.Process.Pid)
	var child int
	for i := 0; child == 0 && i < 200; i++ {
		time.Sleep(50 * time.Millisecond)
		b, _ := os.ReadFile(out.Name())
		if !strings.Contains(string(b), "Serving on") {
			continue
		}
		files, _ := filepath.Glob(children)
		if len(files) == 0 {
			t.Skipf("no %s", children)
		}
		for _, f := range files {
			raw, _ := os.ReadFile(f)
			if pids := strings.Fields(string(raw)); len(pids) > 0 {
				child, _ = strconv.Atoi(pids[0])
			}
		}
	}
	if child == 0 {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("no registry process under ociwf: %s", b)
	}
	if err := syscall.Kill(child, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 128+int(syscall.SIGKILL) {
		b, _ := os.ReadFile(out.Name())
		t.Fatalf("ociwf after its registry was killed: %v; want exit %d\n%s", err, 128+int(syscall.SIGKILL), b)
	}
	if b, _ := os.ReadFile(out.Name()); strings.Contains(string(b), "Error:") {
		t.Fatalf("ociwf printed an error over the registry's output:\n%s", b)
	}
}
