package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

func TestVerifyPolicyAllAndPull(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	host := registrytest.New(t)
	repo := host + "/workflows/many"
	for _, sample := range []string{"build-test-release.yaml", "fan-out-fan-in.yaml"} {
		if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", prefix+".key", samples+sample, repo); code != 0 {
			t.Fatalf("publish: %s", stderr)
		}
	}
	// An unsigned version among them.
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	unsigned := filepath.Join(dir, "unsigned.yaml")
	if err := os.WriteFile(unsigned, []byte(strings.Replace(string(src), "version: 1.4.0", "version: 0.9.0", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", unsigned, repo); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	policy := filepath.Join(dir, "trust-policy.yaml")
	if err := os.WriteFile(policy, []byte(`version: ociwf.dev/trust/v1
trustPolicies:
  - name: many
    registryScopes: ["`+host+`/workflows/*"]
    signers: [{name: release, key: release.pub}]
    require: {attestations: [slsaprovenance1, cyclonedx]}
`), 0o600); err != nil {
		t.Fatal(err)
	}

	out, stderr, code := runCLI(t, "verify", "--plain-http", "--policy", policy, repo+":1.4.0")
	if code != 0 || !strings.Contains(out, `trust policy "many", signers release`) || !strings.Contains(out, "ok   reproducibility") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}

	// One JSON document, even on failure, with the failed check.
	out, _, code = runCLI(t, "verify", "--plain-http", "--policy", policy, "--output", "json", repo+":0.9.0")
	var rep struct {
		Verified bool
		ExitCode int
		Error    string
		Checks   []struct{ Name, Status, Expected, Actual string }
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitVerification || rep.Verified || rep.ExitCode != cli.ExitVerification {
		t.Fatalf("verify unsigned: exit %d, %v\n%s", code, err, out)
	}
	if c := rep.Checks[3]; c.Name != "signatures" || c.Status != "fail" || c.Actual == "" {
		t.Fatalf("checks %+v", rep.Checks)
	}

	out, stderr, code = runCLI(t, "verify", "--all", "--plain-http", "--policy", policy, "--concurrency", "2", "--output", "json", repo)
	var sum struct {
		Versions, Verified, Failed, Errors int
		Outcomes                           []struct{ Tag, Check string }
	}
	if err := json.Unmarshal([]byte(out), &sum); err != nil || code != cli.ExitVerification {
		t.Fatalf("verify --all: exit %d, %v\n%s%s", code, err, out, stderr)
	}
	if sum.Versions != 3 || sum.Verified != 2 || sum.Failed != 1 || sum.Errors != 0 {
		t.Fatalf("summary %+v", sum)
	}
	for _, o := range sum.Outcomes {
		if (o.Tag == "0.9.0") != (o.Check == "signatures") {
			t.Fatalf("outcome %+v", o)
		}
	}

	// pull writes nothing unless verification passed.
	bad := t.TempDir()
	if _, stderr, code := runCLI(t, "pull", "--plain-http", "--policy", policy, repo+":0.9.0", "-o", bad); code != cli.ExitVerification || !strings.Contains(stderr, "signatures check failed") {
		t.Fatalf("pull unsigned: exit %d %s", code, stderr)
	}
	if entries, _ := os.ReadDir(bad); len(entries) != 0 {
		t.Fatalf("a failed pull wrote %v", entries)
	}
	good := t.TempDir()
	out, stderr, code = runCLI(t, "pull", "--plain-http", "--key", prefix+".pub", repo+":2.0.1", "-o", good)
	if code != 0 || !strings.Contains(out, "Verified "+repo+"@sha256:") {
		t.Fatalf("pull: exit %d %s %s", code, out, stderr)
	}
	for _, f := range []string{"workflow.yaml", "plan.json", "sbom.cdx.json"} {
		if _, err := os.Stat(filepath.Join(good, f)); err != nil {
			t.Fatal(err)
		}
	}
}

// Trust policy keys in cosign's k8s:// form load through the
// sigstore-kms-k8s plugin, with cosign's own loader: the secret is looked
// up in the cluster (none here), as cosign looks it up. Without the plugin
// on PATH, verify says which to install.
func TestVerifyKeyK8sSecret(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	host := registrytest.New(t)
	ref := host + "/workflows/k8s:1.4.0"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", prefix+".key", samples+"build-test-release.yaml", ref); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "no-kubeconfig"))
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	t.Setenv("KUBERNETES_SERVICE_PORT", "")
	path := os.Getenv("PATH")
	t.Setenv("PATH", t.TempDir())
	_, stderr, code := runCLI(t, "verify", "--plain-http", "--key", "k8s://ociwf/release", ref)
	if code == 0 || !strings.Contains(stderr, "sigstore-kms-k8s, which is not on PATH") || !strings.Contains(stderr, "go install ociwf.dev/cmd/sigstore-kms-k8s@") {
		t.Fatalf("verify --key k8s:// without the plugin: exit %d\n%s", code, stderr)
	}
	t.Setenv("PATH", path)
	pluginOnPath(t, "k8s")
	_, stderr, code = runCLI(t, "verify", "--plain-http", "--key", "k8s://ociwf/release", ref)
	if code == 0 || !strings.Contains(stderr, "k8s://ociwf/release") || !strings.Contains(stderr, "in-cluster configuration") {
		t.Fatalf("verify --key k8s:// through the plugin: exit %d\n%s", code, stderr)
	}
}
