package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// cosign's names for the registry flags do what ociwf's do: a push to a
// loopback plain-HTTP registry needs --plain-http or --allow-http-registry,
// and one to a registry with a self-signed certificate --insecure or
// --allow-insecure-registry.
func TestCosignRegistryFlagNames(t *testing.T) {
	plain := registrytest.New(t)
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	conf := filepath.Join(dir, "tls.yml")
	if err := os.WriteFile(conf, []byte("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    certificate: "+cert+"\n    key: "+key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := registryext.LoadConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	tls := registrytest.Start(t, cfg).Addr()
	wf := samples + "fan-out-fan-in.yaml"
	for _, c := range []struct {
		name  string
		host  string
		flags []string
		code  int
	}{
		{"plain HTTP without a flag", plain, nil, cli.ExitError},
		{"--plain-http", plain, []string{"--plain-http"}, cli.ExitOK},
		{"--allow-http-registry", plain, []string{"--allow-http-registry"}, cli.ExitOK},
		{"both, agreeing", plain, []string{"--plain-http", "--allow-http-registry=true"}, cli.ExitOK},
		{"self-signed without a flag", tls, nil, cli.ExitError},
		{"--insecure", tls, []string{"--insecure"}, cli.ExitOK},
		{"--allow-insecure-registry", tls, []string{"--allow-insecure-registry"}, cli.ExitOK},
		{"both, agreeing", tls, []string{"--allow-insecure-registry", "--insecure"}, cli.ExitOK},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"push", "--offline", wf, c.host + "/cosign/names"}, c.flags...)
			stdout, stderr, code := runCLI(t, args...)
			if code != c.code {
				t.Fatalf("%q: exit %d, want %d\n%s%s", args, code, c.code, stdout, stderr)
			}
			if code == cli.ExitOK && !strings.Contains(stdout, c.host+"/cosign/names@sha256:") {
				t.Fatalf("%q printed no pinned reference:\n%s", args, stdout)
			}
		})
	}
}

// Giving a flag and its cosign name opposite values is a usage error,
// in either order, whatever else the command line says; repeating one
// name keeps pflag's rule (the last counts).
func TestCosignRegistryFlagConflicts(t *testing.T) {
	wf := samples + "fan-out-fan-in.yaml"
	for _, flags := range [][]string{
		{"--plain-http", "--allow-http-registry=false"},
		{"--allow-http-registry=false", "--plain-http"},
		{"--insecure=false", "--allow-insecure-registry"},
		{"--allow-insecure-registry", "--insecure=false"},
	} {
		args := append([]string{"push", "--offline", wf, "127.0.0.1:1/w/x"}, flags...)
		_, stderr, code := runCLI(t, args...)
		if code != cli.ExitUsage || !strings.Contains(stderr, "contradicts") || !strings.Contains(stderr, "the same flag") {
			t.Errorf("%q: exit %d, stderr %q; want exit 2 naming the contradiction", flags, code, stderr)
		}
	}
	for _, c := range []struct {
		args            []string
		plain, insecure bool
	}{
		{[]string{"--allow-http-registry", "--allow-http-registry=false"}, false, false},
		{[]string{"--plain-http=false", "--plain-http"}, true, false},
		{[]string{"--plain-http", "--allow-http-registry", "--allow-insecure-registry"}, true, true},
		{[]string{"--allow-insecure-registry=false"}, false, false},
	} {
		var r remoteFlags
		fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
		r.register(fs, false)
		if err := fs.Parse(c.args); err != nil || r.opts.PlainHTTP != c.plain || r.opts.Insecure != c.insecure {
			t.Errorf("%q: %v, plain-http %t, insecure %t; want %t, %t", c.args, err, r.opts.PlainHTTP, r.opts.Insecure, c.plain, c.insecure)
		}
	}
}

// Help shows cosign's names as what they are.
func TestCosignRegistryFlagNamesInHelp(t *testing.T) {
	stdout, _, code := runCLI(t, "push", "--help")
	for _, want := range []string{
		"--allow-http-registry       the same as --plain-http (cosign's name for it)",
		"--allow-insecure-registry   the same as --insecure (cosign's name for it)",
		"--plain-http                use plain HTTP",
	} {
		if code != cli.ExitOK || !strings.Contains(stdout, want) {
			t.Errorf("push --help lacks %q:\n%s", want, stdout)
		}
	}
}
