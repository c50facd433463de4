package main

import (
	"fmt"
	"io"
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
	fs.BoolVar(&r.opts.PlainHTTP, "plain-http", false, "use plain HTTP instead of HTTPS (loopback registries)")
	fs.BoolVar(&r.opts.Insecure, "insecure", false, "skip TLS certificate verification")
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
