package main

import (
	"bytes"
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
