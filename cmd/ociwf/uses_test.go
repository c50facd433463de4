package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// compile --key and publish check the lifecycle of every uses:
// dependency: a deprecated one is refused unless --allow-deprecated (which
// warns), a retired or unpublished one always, naming it and its state.
func TestUsesLifecycle(t *testing.T) {
	host := registrytest.New(t)
	keys := newKeys(t)
	for _, sub := range []struct{ file, ref string }{
		{"build-test-release.yaml", host + "/workflows/build-test-release:1.4.0"},
		{"fan-out-fan-in.yaml", host + "/workflows/fan-out-fan-in:2.0.1"},
	} {
		if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", samples+sub.file, sub.ref); code != 0 {
			t.Fatal(stderr)
		}
	}
	src, err := os.ReadFile(samples + "nested-uses.yaml")
	if err != nil {
		t.Fatal(err)
	}
	train := filepath.Join(t.TempDir(), "train.yaml")
	if err := os.WriteFile(train, []byte(strings.ReplaceAll(string(src), "127.0.0.1:5001", host)), 0o644); err != nil {
		t.Fatal(err)
	}
	compile := func(extra ...string) (string, int) {
		t.Helper()
		_, stderr, code := runCLI(t, append([]string{"compile", "--plain-http", "--key", keys + ".pub", "-o", filepath.Join(t.TempDir(), "plan.json")}, append(extra, train)...)...)
		return stderr, code
	}
	if stderr, code := compile(); code != 0 {
		t.Fatalf("compile with published dependencies: exit %d: %s", code, stderr)
	}
	sub := host + "/workflows/build-test-release:1.4.0"
	if _, stderr, code := runCLI(t, "lifecycle", "deprecate", "--plain-http", "--key", keys+".key", "--reason", "use 1.5.0", sub); code != 0 {
		t.Fatal(stderr)
	}
	if stderr, code := compile(); code != cli.ExitImmutable || !strings.Contains(stderr, "is deprecated (no_new_references)") || !strings.Contains(stderr, "--allow-deprecated") {
		t.Fatalf("compile with a deprecated dependency: exit %d: %s", code, stderr)
	}
	if stderr, code := compile("--allow-deprecated"); code != 0 || !strings.Contains(stderr, "WARNING: uses "+sub) {
		t.Fatalf("compile --allow-deprecated: exit %d: %s", code, stderr)
	}
	// publish checks the same, under its own key by default, before
	// anything is signed or tagged.
	parent := host + "/workflows/release-train:3.1.0"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", train, parent); code != cli.ExitImmutable || !strings.Contains(stderr, "deprecated") {
		t.Fatalf("publish with a deprecated dependency: exit %d: %s", code, stderr)
	}
	if _, _, code := runCLI(t, "inspect", "--plain-http", parent); code == 0 {
		t.Fatal("a refused publish left a tag")
	}
	if _, stderr, code := runCLI(t, "lifecycle", "retire", "--plain-http", "--key", keys+".key", "--reason", "CVE-2026-2", sub); code != 0 {
		t.Fatal(stderr)
	}
	if stderr, code := compile("--allow-deprecated"); code != cli.ExitImmutable || !strings.Contains(stderr, "is retired (cannot_be_referenced)") {
		t.Fatalf("compile with a retired dependency: exit %d: %s", code, stderr)
	}
	// A draft (pushed, never published) cannot be referenced either.
	if _, stderr, code := runCLI(t, "push", "--plain-http", samples+"build-test-release.yaml", host+"/workflows/drafts:1.4.0"); code != 0 {
		t.Fatal(stderr)
	}
	draft := filepath.Join(t.TempDir(), "draft.yaml")
	os.WriteFile(draft, []byte(strings.ReplaceAll(strings.ReplaceAll(string(src), "127.0.0.1:5001", host), "workflows/build-test-release:1.4.0", "workflows/drafts:1.4.0")), 0o644)
	if _, stderr, code := runCLI(t, "compile", "--plain-http", "--key", keys+".pub", draft); code != cli.ExitImmutable || !strings.Contains(stderr, "is draft (cannot_be_referenced)") {
		t.Fatalf("compile with a draft dependency: exit %d: %s", code, stderr)
	}
}
