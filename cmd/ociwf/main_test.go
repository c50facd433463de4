package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

const samples = "../../testdata/workflows/"

// runCLI runs the CLI in-process and returns stdout, stderr and the exit code.
func runCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return cliIn(t, "", args...)
}

// cliIn is runCLI with stdin.
func cliIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return out.String(), errb.String(), code
}

// newKeys generates a key pair with password "pw", which COSIGN_PASSWORD
// is set to, and returns its prefix (PREFIX.key, PREFIX.pub).
func newKeys(t *testing.T) string {
	t.Helper()
	keys := filepath.Join(t.TempDir(), "k")
	t.Setenv("COSIGN_PASSWORD", "pw")
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", keys); code != 0 {
		t.Fatal(stderr)
	}
	return keys
}

func TestExitCodes(t *testing.T) {
	host := registrytest.New(t)
	repo := host + "/workflows/cli"
	keys := newKeys(t)
	cases := []struct {
		name string
		args []string
		code int
		want string // in stderr
	}{
		{"unknown flag", []string{"push", "--bogus"}, cli.ExitUsage, "unknown flag"},
		{"missing args", []string{"push", samples + "build-test-release.yaml"}, cli.ExitUsage, "accepts 2 arg(s)"},
		{"bad output", []string{"version", "--output", "yaml"}, cli.ExitUsage, "--output must be text or json"},
		{"invalid workflow", []string{"compile", "--offline", samples + "invalid/cycle.yaml"}, cli.ExitError, "dependency cycle: build -> test -> package -> build"},
		{"unpinned offline", []string{"compile", "--offline", samples + "invalid/unpinned-offline.yaml"}, cli.ExitError, "not pinned"},
		{"missing file", []string{"compile", "nope.yaml"}, cli.ExitError, "nope.yaml"},
		{"push", []string{"push", "--plain-http", "--offline", samples + "build-test-release.yaml", repo}, cli.ExitOK, ""},
		{"push again", []string{"push", "--plain-http", "--offline", samples + "build-test-release.yaml", repo}, cli.ExitOK, ""},
		{"push other to same tag", []string{"push", "--plain-http", "--offline", samples + "fan-out-fan-in.yaml", repo + ":1.4.0"}, cli.ExitImmutable, "already names sha256:"},
		{"push to digest", []string{"push", "--plain-http", "--offline", samples + "fan-out-fan-in.yaml", repo + "@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41"}, cli.ExitUsage, "not a digest"},
		{"pull without tag", []string{"pull", "--plain-http", "--key", "cosign.pub", repo}, cli.ExitUsage, "name a tag or a digest"},
		{"pull missing", []string{"pull", "--plain-http", "--key", "cosign.pub", repo + ":9.9.9", "-o", t.TempDir()}, cli.ExitError, "9.9.9"},
		{"pull without trust", []string{"pull", "--plain-http", repo + ":1.4.0"}, cli.ExitUsage, "--key PUBLIC_KEY or --policy FILE"},
		{"pull unsigned", []string{"pull", "--plain-http", "--key", keys + ".pub", repo + ":1.4.0", "-o", t.TempDir()}, cli.ExitVerification, "signatures check failed: the artifact is not signed"},
		{"verify with key and policy", []string{"verify", "--key", "a.pub", "--policy", "p.yaml", repo + ":1.4.0"}, cli.ExitUsage, "mutually exclusive"},
		{"verify --all with a tag", []string{"verify", "--all", "--key", "a.pub", repo + ":1.4.0"}, cli.ExitUsage, "--all takes a repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, c.args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
	// The refused push left the tag where the first push put it.
	out, _, code := runCLI(t, "push", "--plain-http", "--offline", "--output", "json", samples+"build-test-release.yaml", repo)
	var first struct{ Digest string }
	if code != 0 || json.Unmarshal([]byte(out), &first) != nil {
		t.Fatalf("push: %s", out)
	}
	out, _, _ = runCLI(t, "inspect", "--plain-http", "--output", "json", repo+":1.4.0")
	var now struct{ Descriptor struct{ Digest string } }
	if json.Unmarshal([]byte(out), &now) != nil || now.Descriptor.Digest != first.Digest {
		t.Fatalf("tag 1.4.0 names %q after the refused push, want %q", now.Descriptor.Digest, first.Digest)
	}
}

func TestPushPrintsPinnedReferenceLast(t *testing.T) {
	host := registrytest.New(t)
	out, stderr, code := runCLI(t, "push", "--plain-http", "--offline", samples+"fan-out-fan-in.yaml", host+"/wf/fan")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, host+"/wf/fan@sha256:") {
		t.Fatalf("last line %q is not the pinned reference", last)
	}

	dir := t.TempDir()
	out, stderr, code = runCLI(t, "pull", "--plain-http", "--insecure-skip-verify", "--output", "json", last, "-o", dir)
	if code != 0 || !strings.Contains(stderr, "WARNING: --insecure-skip-verify") {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	var pulled struct {
		Reference string   `json:"reference"`
		Files     []string `json:"files"`
	}
	if err := json.Unmarshal([]byte(out), &pulled); err != nil || pulled.Reference != last || len(pulled.Files) != 3 {
		t.Fatalf("pull --output json = %s (%v)", out, err)
	}
	src, _ := os.ReadFile(samples + "fan-out-fan-in.yaml")
	if got, _ := os.ReadFile(filepath.Join(dir, "workflow.yaml")); !bytes.Equal(got, src) {
		t.Fatal("pulled source differs from the pushed file")
	}

	out, _, code = runCLI(t, "inspect", "--plain-http", "--output", "json", host+"/wf/fan:2.0.1")
	var in struct {
		Tags     []string `json:"tags"`
		Manifest struct {
			ArtifactType string `json:"artifactType"`
		} `json:"manifest"`
	}
	if code != 0 || json.Unmarshal([]byte(out), &in) != nil || len(in.Tags) != 1 || in.Tags[0] != "2.0.1" {
		t.Fatalf("inspect --output json = %s", out)
	}
}

func TestOutputJSONOnErrors(t *testing.T) {
	out, _, code := runCLI(t, "compile", "--offline", "--output", "json", samples+"invalid/dangling-needs.yaml")
	var e struct {
		Error    string `json:"error"`
		ExitCode int    `json:"exitCode"`
	}
	if code != cli.ExitError || json.Unmarshal([]byte(out), &e) != nil || e.ExitCode != cli.ExitError || !strings.Contains(e.Error, `needs unknown step "biuld"`) {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
}

func TestCompileWritesPlan(t *testing.T) {
	plan := filepath.Join(t.TempDir(), "plan.json")
	out, stderr, code := runCLI(t, "compile", "--offline", "--output", "json", samples+"generated-200.yaml", "-o", plan)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var res struct {
		Digest string `json:"digest"`
		Steps  int    `json:"steps"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Steps != 200 || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("compile --output json = %s (%v)", out, err)
	}
	if b, err := os.ReadFile(plan); err != nil || !bytes.HasPrefix(b, []byte(`{"apiVersion":"ociwf.dev/plan/v1"`)) {
		t.Fatalf("plan file: %v", err)
	}
}

func TestReproducibleWithSourceDateEpoch(t *testing.T) {
	host := registrytest.New(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	a, _, _ := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", host+"/a/wf")
	b, _, _ := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", host+"/b/wf")
	da := a[strings.LastIndex(a, "@"):]
	db := b[strings.LastIndex(b, "@"):]
	if da != db {
		t.Fatalf("same input and SOURCE_DATE_EPOCH gave %s and %s", da, db)
	}
	out, _, _ := runCLI(t, "inspect", "--plain-http", host+"/a/wf:1.4.0")
	if !strings.Contains(out, "org.opencontainers.image.created: 2023-11-14T22:13:20Z") {
		t.Fatalf("created annotation not taken from SOURCE_DATE_EPOCH:\n%s", out)
	}
}

// pluginOnPath builds ociwf's sigstore KMS plugin for scheme and puts it
// first on PATH for the rest of the test.
func pluginOnPath(t *testing.T, scheme string) {
	t.Helper()
	bin := t.TempDir()
	name := "sigstore-kms-" + scheme
	if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, name), "ociwf.dev/cmd/"+name).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
}
