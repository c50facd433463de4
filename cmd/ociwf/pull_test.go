package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// listDir returns the names in dir and the content of its regular files.
func listDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range entries {
		if e.IsDir() {
			out[e.Name()] = "(dir)"
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = string(b)
	}
	return out
}

// TestPullAllOrNothing pulls, verified and unverified, into directories
// where files are in the way: nothing is replaced without --force, and a
// directory in the way of the last file stops the pull before the first
// one is written.
func TestPullAllOrNothing(t *testing.T) {
	host := registrytest.New(t)
	repo := host + "/workflows/pull"
	keys := newKeys(t)
	out, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", repo)
	if code != 0 {
		t.Fatalf("publish: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pinned := lines[len(lines)-1]
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string][]string{
		"verified":   {"pull", "--plain-http", "--key", keys + ".pub", pinned},
		"unverified": {"pull", "--plain-http", "--insecure-skip-verify", pinned},
	}
	for mode, pull := range modes {
		t.Run(mode, func(t *testing.T) {
			cases := []struct {
				name   string
				setup  func(dir string)
				force  bool
				code   int
				stderr string
				after  func(dir string) map[string]string // nil: the directory is as setup left it
			}{
				{"existing file refused", func(dir string) { write(t, dir, "workflow.yaml", "old") }, false, cli.ExitError, "--force", nil},
				{"existing file replaced with --force", func(dir string) { write(t, dir, "workflow.yaml", "old") }, true, cli.ExitOK, "", func(string) map[string]string {
					return map[string]string{"workflow.yaml": string(src), "plan.json": "*", "sbom.cdx.json": "*"}
				}},
				{"directory in the way", func(dir string) {
					if err := os.Mkdir(filepath.Join(dir, "sbom.cdx.json"), 0o755); err != nil {
						t.Fatal(err)
					}
				}, false, cli.ExitError, "sbom.cdx.json", nil},
				{"directory in the way with --force", func(dir string) {
					write(t, dir, "workflow.yaml", "old")
					write(t, dir, "plan.json", "old plan")
					if err := os.Mkdir(filepath.Join(dir, "sbom.cdx.json"), 0o755); err != nil {
						t.Fatal(err)
					}
				}, true, cli.ExitError, "not a regular file", nil},
				{"empty directory", func(string) {}, false, cli.ExitOK, "", func(string) map[string]string {
					return map[string]string{"workflow.yaml": string(src), "plan.json": "*", "sbom.cdx.json": "*"}
				}},
			}
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					dir := t.TempDir()
					c.setup(dir)
					before := listDir(t, dir)
					args := append(append([]string{}, pull...), "-o", dir)
					if c.force {
						args = append(args, "--force")
					}
					_, stderr, code := runCLI(t, args...)
					if code != c.code || !strings.Contains(stderr, c.stderr) {
						t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.stderr)
					}
					want := before
					if c.after != nil {
						want = c.after(dir)
					}
					got := listDir(t, dir)
					for name, content := range want {
						if content == "*" {
							got[name] = "*"
						}
					}
					if len(got) != len(want) {
						t.Fatalf("directory holds %v, want %v", slices.Sorted(mapKeys(got)), slices.Sorted(mapKeys(want)))
					}
					for name, content := range want {
						if got[name] != content {
							t.Fatalf("%s = %.40q, want %.40q", name, got[name], content)
						}
					}
				})
			}
		})
	}
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mapKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestReadsDoNotWrite runs the commands that only read against a mistyped
// OCI layout path and against a real layout: the mistyped path is cli.Reported
// and not created, and the real layout is left byte for byte as it was.
func TestReadsDoNotWrite(t *testing.T) {
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	if _, stderr, code := runCLI(t, "push", "--offline", "--oci-layout", samples+"build-test-release.yaml", layout+":1.4.0"); code != 0 {
		t.Fatalf("push: exit %d: %s", code, stderr)
	}
	typo := filepath.Join(dir, "typo")
	reads := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", "--oci-layout"}, cli.ExitError, "no OCI layout at " + typo},
		{[]string{"pull", "--oci-layout", "--insecure-skip-verify", "-o", filepath.Join(dir, "out")}, cli.ExitError, "no OCI layout at " + typo},
		{[]string{"pull", "--oci-layout", "--key", "none.pub", "-o", filepath.Join(dir, "out")}, cli.ExitUsage, "--insecure-skip-verify"},
	}
	for _, r := range reads {
		t.Run(strings.Join(r.args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, append(append([]string{}, r.args...), typo+":1.4.0")...)
			if code != r.code || !strings.Contains(stderr, r.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, r.code, r.want)
			}
			if _, err := os.Stat(typo); !os.IsNotExist(err) {
				t.Fatalf("%s was created (%v)", typo, err)
			}
		})
	}
	before := listDir(t, layout)
	out, stderr, code := runCLI(t, "inspect", "--oci-layout", layout+":1.4.0")
	if code != 0 || !strings.Contains(out, "Tags:          1.4.0") {
		t.Fatalf("inspect: exit %d: %s%s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, "pull", "--oci-layout", "--insecure-skip-verify", "-o", filepath.Join(dir, "out"), layout+":1.4.0"); code != 0 {
		t.Fatalf("pull: exit %d: %s", code, stderr)
	}
	after := listDir(t, layout)
	if len(after) != len(before) || after["index.json"] != before["index.json"] || after["oci-layout"] != before["oci-layout"] {
		t.Fatalf("reads changed the layout: %v -> %v", before, after)
	}
}
