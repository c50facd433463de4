package main

import (
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
)

// jsonDocuments decodes stdout as a stream of JSON values and returns them.
func jsonDocuments(t *testing.T, stdout string) []map[string]any {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var docs []map[string]any
	for range 10 {
		var v map[string]any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("stdout is not a stream of JSON objects: %v\n%s", err, stdout)
		}
		docs = append(docs, v)
	}
	t.Fatalf("more than 10 JSON documents on stdout:\n%s", stdout)
	return nil
}

// TestUsageErrors runs every command with a bad reference, an unknown flag
// and an unknown subcommand or extra argument: each exits 2, and with
// --output json anywhere on the command line prints exactly one JSON
// document, the error, on stdout.
func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	pred := filepath.Join(dir, "pred.json")
	if err := os.WriteFile(pred, []byte(`{}`), 0o600); err != nil {
		t.Fatal(err)
	}
	wf := samples + "build-test-release.yaml"
	const host = "127.0.0.1:1" // never reached: every case fails before
	reserved := host + "/w/x:sha256-" + strings.Repeat("a", 64) + ".sig"
	badRefs := []string{
		host + "/Upper/repo:1.0.0", // uppercase repository
		host + "/w/x:bad tag",      // not a tag
		host + "/w/x:",             // empty tag
		host + "/w/x@",             // empty digest
		host + "/w/x@sha256:abc",   // not a digest
	}
	// Each command with the arguments around its REF.
	refCommands := map[string]func(ref string) []string{
		"push":    func(ref string) []string { return []string{"push", "--offline", wf, ref} },
		"publish": func(ref string) []string { return []string{"publish", "--offline", "--key", "none.key", wf, ref} },
		"pull":    func(ref string) []string { return []string{"pull", "--key", "none.pub", "-o", dir, ref} },
		"pull unverified": func(ref string) []string {
			return []string{"pull", "--insecure-skip-verify", "-o", dir, ref}
		},
		"inspect": func(ref string) []string { return []string{"inspect", ref} },
		"sign":    func(ref string) []string { return []string{"sign", "--key", "none.key", ref} },
		"attest":  func(ref string) []string { return []string{"attest", "--key", "none.key", "--predicate", pred, ref} },
		"verify":  func(ref string) []string { return []string{"verify", "--key", "none.pub", ref} },
	}
	type tc struct {
		name string
		args []string
	}
	var cases []tc
	for name, argv := range refCommands {
		for _, ref := range badRefs {
			cases = append(cases, tc{name + " " + ref, argv(ref)})
		}
	}
	// A reserved tag names a digest's accessories: never a version tag.
	for _, name := range []string{"push", "publish"} {
		cases = append(cases, tc{name + " reserved tag", refCommands[name](reserved)})
	}
	layoutCases := []tc{
		{"push layout empty tag", []string{"push", "--offline", "--oci-layout", wf, filepath.Join(dir, "layout") + ":"}},
		{"push layout bad tag", []string{"push", "--offline", "--oci-layout", wf, filepath.Join(dir, "layout") + ":bad%tag"}},
		{"push layout reserved tag", []string{"push", "--offline", "--oci-layout", wf, filepath.Join(dir, "layout") + ":sha256-" + strings.Repeat("b", 64)}},
		{"inspect layout bad digest", []string{"inspect", "--oci-layout", filepath.Join(dir, "layout") + "@sha256:abc"}},
	}
	cases = append(cases, layoutCases...)
	commands := [][]string{
		{"compile"}, {"push"}, {"pull"}, {"inspect"}, {"publish"}, {"sign"}, {"attest"}, {"verify"},
		{"key"}, {"key", "generate"}, {"registry"}, {"registry", "serve"}, {"audit"}, {"audit", "verify"},
		{"version"}, {"completion"}, {},
	}
	for _, c := range commands {
		name := strings.Join(append([]string{"ociwf"}, c...), " ")
		cases = append(cases,
			tc{name + " unknown flag", append(append([]string{}, c...), "--bogus-flag")},
			tc{name + " unknown command", append(append([]string{}, c...), "bogus", "bogus", "bogus")},
		)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, c.args...)
			if code != cli.ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, cli.ExitUsage, stderr)
			}
			for _, args := range [][]string{
				append(append([]string{}, c.args...), "--output", "json"),
				append([]string{"--output=json"}, c.args...),
			} {
				stdout, stderr, code := runCLI(t, args...)
				docs := jsonDocuments(t, stdout)
				if code != cli.ExitUsage || len(docs) != 1 || docs[0]["exitCode"] != float64(cli.ExitUsage) || docs[0]["error"] == "" {
					t.Fatalf("%q: exit %d, %d JSON documents on stdout %q; want exit %d and one error document (stderr %q)", args, code, len(docs), stdout, cli.ExitUsage, stderr)
				}
			}
		})
	}
}

// TestReservedTagWritesNothing checks that a refused version tag leaves
// the destination as it was.
func TestReservedTagWritesNothing(t *testing.T) {
	layout := filepath.Join(t.TempDir(), "layout")
	for _, tag := range []string{
		"sha256-" + strings.Repeat("c", 64),
		"sha256-" + strings.Repeat("c", 64) + ".sig",
		"SHA256-" + strings.Repeat("C", 64) + ".att",
		"sha256-" + strings.Repeat("d", 64) + ".sbom",
	} {
		_, stderr, code := runCLI(t, "push", "--offline", "--oci-layout", samples+"build-test-release.yaml", layout+":"+tag)
		if code != cli.ExitUsage || !strings.Contains(stderr, "reserved") {
			t.Fatalf("push to %s: exit %d, stderr %q; want exit 2 naming the reserved tag", tag, code, stderr)
		}
	}
	// A push that fails before writing leaves no layout behind, also when
	// the workflow does not compile.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: nope\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, code := runCLI(t, "push", "--offline", "--oci-layout", bad, layout+":1.0.0"); code == 0 {
		t.Fatal("push of a workflow that does not compile succeeded")
	}
	if _, err := os.Stat(layout); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("failed pushes left %s behind (%v)", layout, err)
	}
}
