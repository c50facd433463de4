package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ociwf.dev/cmd/internal/cli"
)

// script writes an executable shell script with body and returns its path.
func script(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "ext")
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

// ReadExtension reports what it found of an extension, whatever the
// extension does: not installed, a version report, a failure, garbage, or
// no answer before the timeout.
func TestReadExtension(t *testing.T) {
	report, err := json.Marshal(cli.Version{Name: "ext", Version: "v1.2.3", Modules: []cli.Module{{Name: "distribution", Path: "github.com/distribution/distribution/v3", Version: "v3.1.2"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		find      func() (string, error)
		installed bool
		version   string
		err       string
	}{
		{"not installed", func() (string, error) { return "", fmt.Errorf("ext is %w", cli.ErrNotInstalled) }, false, "", ""},
		{"lookup failed", func() (string, error) { return "", fmt.Errorf("ext: permission denied") }, false, "", "permission denied"},
		{"reports", func() (string, error) {
			return script(t, `[ "$*" = "version --output json" ] && echo '`+string(report)+`'`), nil
		}, true, "v1.2.3", ""},
		{"fails", func() (string, error) { return script(t, "echo 'Error: broken' >&2; exit 1"), nil }, true, "", "exit status 1: Error: broken"},
		{"garbage", func() (string, error) { return script(t, "echo 1.0.0"), nil }, true, "", `printed no version report ("1.0.0")`},
		{"hangs", func() (string, error) { return script(t, "exec sleep 60"), nil }, true, "", "no answer within 200ms"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			ev := cli.ReadExtension(context.Background(), cli.Extension{Name: "ext", Find: c.find, Timeout: 200 * time.Millisecond})
			if time.Since(start) > 10*time.Second {
				t.Errorf("took %s", time.Since(start))
			}
			got := ""
			if ev.Version != nil {
				got = ev.Version.Version
			}
			if ev.Name != "ext" || ev.Installed != c.installed || got != c.version || (c.err == "") != (ev.Error == "") || !strings.Contains(ev.Error, c.err) {
				t.Errorf("%+v; want installed %t, version %q, error %q", ev, c.installed, c.version, c.err)
			}
			if ev.Installed && ev.Path == "" {
				t.Errorf("installed at no path: %+v", ev)
			}
		})
	}
}

// The version of the test binary's build: (devel), with the toolchain.
// The test binary of a package that is not a command records no
// modules (the commands' tests check the list), so it is empty, not null.
func TestBuildVersion(t *testing.T) {
	v := cli.BuildVersion("x")
	if v.Name != "x" || v.Version != "(devel)" || !strings.HasPrefix(v.GoVersion, "go") || !strings.Contains(v.Platform, "/") || v.Modules == nil || v.Extensions == nil {
		t.Fatalf("%+v", v)
	}
	if cli.ToolVersion() != v.Version {
		t.Errorf("ToolVersion %q, BuildVersion %q", cli.ToolVersion(), v.Version)
	}
}
