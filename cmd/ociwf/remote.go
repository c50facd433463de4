package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/target"
)

// remoteFlags are the registry access flags shared by every command that
// talks to a registry or an OCI layout.
type remoteFlags struct {
	opts          target.Options
	passwordStdin bool
	retries       int
	opened        *target.Opener // made once: stdin can be read only once
}

func (r *remoteFlags) register(fs *pflag.FlagSet, layout bool) {
	// cosign names these two --allow-http-registry and
	// --allow-insecure-registry. Its users look for those names in --help
	// and carry them over in scripts, so both names are accepted and shown,
	// the alias saying which flag it is: a hidden alias would work in a
	// script yet leave a reader of --help unsure that it does.
	aliasedBool(fs, &r.opts.PlainHTTP, "plain-http", "allow-http-registry", "use plain HTTP instead of HTTPS (loopback registries)")
	aliasedBool(fs, &r.opts.Insecure, "insecure", "allow-insecure-registry", "skip TLS certificate verification")
	fs.StringVarP(&r.opts.Username, "username", "u", "", "registry username (default: Docker credential store)")
	fs.StringVarP(&r.opts.Password, "password", "p", "", "registry password or token")
	fs.BoolVar(&r.passwordStdin, "password-stdin", false, "read the registry password from stdin")
	fs.StringVar(&r.opts.DockerConfig, "registry-config", "", "path of a Docker config.json with credentials")
	fs.IntVar(&r.retries, "retries", target.DefaultRetryPolicy().MaxRetries, "retries of a failed idempotent registry request, with capped exponential backoff (0: none)")
	if layout {
		fs.BoolVar(&r.opts.OCILayout, "oci-layout", false, "REF names an OCI image layout directory: DIR[:TAG|@DIGEST]")
	}
}

func (r *remoteFlags) opener(stdin io.Reader) (*target.Opener, error) {
	if r.opened != nil {
		return r.opened, nil
	}
	if r.passwordStdin {
		if r.opts.Password != "" {
			return nil, cli.Usagef("--password and --password-stdin are mutually exclusive")
		}
		b, err := io.ReadAll(io.LimitReader(stdin, 1<<16))
		if err != nil {
			return nil, fmt.Errorf("read password from stdin: %w", err)
		}
		r.opts.Password = strings.TrimRight(string(b), "\r\n")
	}
	if r.opts.Password != "" && r.opts.Username == "" {
		return nil, cli.Usagef("a password needs --username")
	}
	if r.retries < 0 {
		return nil, cli.Usagef("--retries must not be negative, not %d", r.retries)
	}
	policy := target.DefaultRetryPolicy()
	policy.MaxRetries = r.retries
	if r.retries == 0 {
		policy = target.NoRetries()
	}
	r.opts.Retry = &policy
	r.opts.UserAgent = "ociwf/" + cli.ToolVersion()
	o, err := target.New(r.opts)
	if err != nil {
		return nil, err
	}
	r.opened = o
	return o, nil
}

// aliasedBool registers the boolean flag name and its alias, which sets
// the same value: giving both is fine when they agree (--plain-http
// --allow-http-registry) and a usage error when they do not
// (--plain-http --allow-http-registry=false). Repeating one name keeps
// pflag's rule: the last one counts.
func aliasedBool(fs *pflag.FlagSet, p *bool, name, alias, usage string) {
	v := &boolName{p: p, name: name}
	a := &boolName{p: p, name: alias, other: v}
	v.other = a
	fs.VarPF(v, name, "", usage).NoOptDefVal = "true"
	fs.VarPF(a, alias, "", "the same as --"+name+" (cosign's name for it)").NoOptDefVal = "true"
}

// boolName is one of the two names of a boolean flag (see aliasedBool).
type boolName struct {
	p     *bool
	name  string
	set   bool // given on the command line
	other *boolName
}

func (b *boolName) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return err
	}
	if b.other.set && *b.p != v {
		return fmt.Errorf("--%s=%t contradicts --%s=%t: they are the same flag", b.name, v, b.other.name, *b.p)
	}
	*b.p, b.set = v, true
	return nil
}

func (b *boolName) String() string {
	if b.p == nil {
		return "false"
	}
	return strconv.FormatBool(*b.p)
}

func (b *boolName) Type() string { return "bool" }

// IsBoolFlag makes help print it as pflag prints a boolean flag.
func (b *boolName) IsBoolFlag() bool { return true }
