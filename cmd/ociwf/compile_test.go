package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
)

// TestSizeLimitErrors checks that an oversized source is cli.Reported with its
// real size and that a workflow too large to publish fails at compile, not
// midway through a push.
func TestSizeLimitErrors(t *testing.T) {
	dir := t.TempDir()
	base, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.yaml")
	hugeSrc := append(append([]byte{}, base...), []byte("#"+strings.Repeat("x", 5_243_124-len(base)-2)+"\n")...)
	longDesc := filepath.Join(dir, "long-description.yaml")
	descSrc := bytes.Replace(base, []byte("  description: Build, test and release a Go service.\n"),
		[]byte("  description: "+strings.Repeat("d", 2*ociwf.MaxConfigBytes)+"\n"), 1)
	for path, b := range map[string][]byte{huge: hugeSrc, longDesc: descSrc} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	layout := filepath.Join(dir, "layout")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"compile", "--offline", huge}, fmt.Sprintf("is %d bytes; the limit is %d bytes", len(hugeSrc), ociwf.MaxSourceBytes)},
		{[]string{"push", "--offline", "--oci-layout", huge, layout + ":1.0.0"}, fmt.Sprintf("is %d bytes", len(hugeSrc))},
		{[]string{"compile", "--offline", longDesc}, "the config blob (it holds metadata.description) is"},
		{[]string{"push", "--offline", "--oci-layout", longDesc, layout + ":1.0.0"}, "over the 1048576-byte limit"},
	}
	for _, c := range cases {
		_, stderr, code := runCLI(t, c.args...)
		if code != cli.ExitError || !strings.Contains(stderr, c.want) {
			t.Fatalf("%v: exit %d, stderr %q; want exit 1 and %q", c.args, code, stderr, c.want)
		}
	}
}

// compile --graph prints the plan's DAG instead of the plan, in text and
// in JSON, and still writes the plan with -o; an unknown format is a
// usage error.
func TestCompileGraph(t *testing.T) {
	wf := samples + "build-test-release.yaml"
	for _, c := range []struct {
		format, head string
	}{{"mermaid", "flowchart LR\n"}, {"dot", "digraph plan {\n"}} {
		stdout, stderr, code := runCLI(t, "compile", "--offline", "--graph", c.format, wf)
		if code != cli.ExitOK || !strings.HasPrefix(stdout, c.head) || !strings.Contains(stdout, "when params.release") {
			t.Fatalf("--graph %s: exit %d, stdout %q, stderr %q", c.format, code, stdout, stderr)
		}
		planFile := filepath.Join(t.TempDir(), "plan.json")
		again, _, code := runCLI(t, "compile", "--offline", "--graph", c.format, "-o", planFile, wf)
		if b, err := os.ReadFile(planFile); code != cli.ExitOK || again != stdout || err != nil || !bytes.HasPrefix(b, []byte(`{"apiVersion"`)) {
			t.Fatalf("--graph %s -o: exit %d, stdout %q, plan file %v", c.format, code, again, err)
		}
		out, _, code := runCLI(t, "compile", "--offline", "--graph", c.format, "--output", "json", wf)
		var res struct {
			Graph  string
			Digest string
			Plan   json.RawMessage
		}
		if code != cli.ExitOK || json.Unmarshal([]byte(out), &res) != nil || res.Graph != stdout || res.Plan != nil || !strings.HasPrefix(res.Digest, "sha256:") {
			t.Fatalf("--graph %s --output json: exit %d, %s", c.format, code, out)
		}
	}
	_, stderr, code := runCLI(t, "compile", "--offline", "--graph", "svg", wf)
	if code != cli.ExitUsage || !strings.Contains(stderr, `--graph must be mermaid or dot, not "svg"`) {
		t.Fatalf("--graph svg: exit %d, %q", code, stderr)
	}
}

// The "Rendering the plan" section of docs/dsl.md shows a command and
// its output: running the command prints exactly that output.
func TestDocsRenderingThePlan(t *testing.T) {
	raw, err := os.ReadFile("../../docs/dsl.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## Rendering the plan\n")
	if !ok {
		t.Fatal("docs/dsl.md has no Rendering the plan section")
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	block := func(lang string) string {
		_, rest, ok := strings.Cut(section, "\n```"+lang+"\n")
		body, _, closed := strings.Cut(rest, "\n```\n")
		if !ok || !closed {
			t.Fatalf("the section has no ```%s block", lang)
		}
		return body + "\n"
	}
	// $SRC is the clone, as the page's convention says.
	cmd := strings.Fields(os.Expand(block("sh"), func(v string) string {
		if v == "SRC" {
			return "."
		}
		return "$" + v
	}))
	if len(cmd) < 2 || cmd[0] != "ociwf" {
		t.Fatalf("the sh block is not one ociwf command: %q", cmd)
	}
	t.Chdir("../..") // $SRC
	stdout, stderr, code := runCLI(t, cmd[1:]...)
	if code != cli.ExitOK {
		t.Fatalf("%q: exit %d: %s", cmd, code, stderr)
	}
	if want := block("mermaid"); stdout != want {
		t.Errorf("docs/dsl.md shows\n%s\nbut %q prints\n%s", want, strings.Join(cmd, " "), stdout)
	}
}
