package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/cmd/internal/cli/clitest"
)

// runIn runs ociwf-registry in-process and returns stdout, stderr and the
// exit code.
func runIn(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

// `ociwf-registry serve` run in-process answers on its address and stops
// gracefully (exit 0) when its context ends.
func TestServeAndStop(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0", "--root", filepath.Join(dir, "root"), "--output", "json"}, strings.NewReader(""), pw, &errb)
		pw.Close()
	}()
	var started struct{ Addr, Scheme, Root string }
	if err := json.NewDecoder(pr).Decode(&started); err != nil {
		cancel()
		t.Fatalf("serve: %v (exit %d) %s", err, <-done, errb.String())
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + started.Addr + "/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || started.Scheme != "http" {
		t.Fatalf("GET /v2/: %d, scheme %q; want 200 over http", resp.StatusCode, started.Scheme)
	}
	cancel()
	if code := <-done; code != cli.ExitOK {
		t.Fatalf("serve exited %d after its context ended; want 0 (%s)", code, errb.String())
	}
}

// Its usage errors and exit codes follow ociwf's conventions.
func TestUsage(t *testing.T) {
	cases := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bogus"}, cli.ExitUsage, `unknown command "bogus" for "ociwf-registry"`},
		{[]string{"serve", "--bogus"}, cli.ExitUsage, "unknown flag: --bogus"},
		{[]string{"serve", "--coordination", "zookeeper"}, cli.ExitUsage, "--coordination"},
		{[]string{"gc", "--root", "r", "--config", "x.yml"}, cli.ExitUsage, "mutually exclusive"},
		{[]string{"version", "--output", "yaml"}, cli.ExitUsage, "--output must be text or json"},
	}
	for _, c := range cases {
		_, stderr, code := runIn(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "Run 'ociwf-registry --help'") {
			t.Errorf("%v: exit %d, stderr %q; want exit %d naming %q", c.args, code, stderr, c.code, c.want)
		}
	}
	if stdout, _, code := runIn(t, "version", "--output", "json"); code != cli.ExitOK || !strings.Contains(stdout, `"version"`) {
		t.Errorf("version --output json: exit %d, %q", code, stdout)
	}
}

// gc on an empty storage deletes nothing and says so.
func TestGCEmpty(t *testing.T) {
	stdout, stderr, code := runIn(t, "gc", "--root", t.TempDir(), "--dry-run", "--output", "json")
	var res struct{ DryRun bool }
	if code != cli.ExitOK || json.Unmarshal([]byte(stdout), &res) != nil || !res.DryRun {
		t.Fatalf("gc --dry-run: exit %d, %q %q", code, stdout, stderr)
	}
}

// version reports ociwf-registry's build and the libraries it links,
// Distribution among them; it hands over to nothing.
func TestVersion(t *testing.T) {
	stdout, stderr, code := runIn(t, "version", "--output", "json")
	var v cli.Version
	if code != cli.ExitOK || json.Unmarshal([]byte(stdout), &v) != nil {
		t.Fatalf("exit %d: %q %s", code, stdout, stderr)
	}
	var names []string
	for _, m := range v.Modules {
		if m.Version != "" {
			names = append(names, m.Name)
		}
	}
	if v.Name != "ociwf-registry" || v.Version != "(devel)" || v.GoVersion == "" || !slices.Equal(names, []string{"oras-go", "cosign", "sigstore-go", "distribution"}) {
		t.Errorf("version report %+v (modules %q)", v, names)
	}
	if !strings.Contains(stdout, `"extensions": []`) {
		t.Errorf("extensions are not an empty list:\n%s", stdout)
	}
	text, _, _ := runIn(t, "version")
	if !strings.HasPrefix(text, "ociwf-registry (devel)\n") || !strings.Contains(text, "  distribution ") {
		t.Errorf("version:\n%s", text)
	}
}

func newRoot() *cobra.Command {
	var discard strings.Builder
	return (&app{&cli.App{Stdin: strings.NewReader(""), Stdout: &discard, Stderr: &discard}}).rootCmd()
}

// Every command ociwf-registry's help shows, completion and help
// included, has an example, and each example is a command line it
// accepts.
func TestEveryCommandHasAnExample(t *testing.T) {
	clitest.CheckExamples(t, newRoot)
}

// Every command's --help exits 0 and shows its examples.
func TestHelpShowsExamples(t *testing.T) {
	clitest.CheckHelp(t, newRoot, func(args ...string) (string, int) {
		stdout, _, code := runIn(t, args...)
		return stdout, code
	})
}

// ociwf-registry completion writes a script for each shell; the bash one
// is valid bash.
func TestCompletion(t *testing.T) {
	clitest.CheckCompletion(t, "ociwf-registry", func(args ...string) (string, int) {
		stdout, _, code := runIn(t, args...)
		return stdout, code
	})
}
