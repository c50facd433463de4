package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
)

// registryBinary is the registry extension's binary: Distribution, its
// storage drivers and metrics live there, not in ociwf.
const registryBinary = "ociwf-registry"

// registryCmd hands `ociwf registry ARGS...` over to `ociwf-registry
// ARGS...`, found beside the ociwf executable or on PATH: its flags, its
// output and its exit code are the registry's own.
func (a *app) registryCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "registry serve|gc [flags]",
		Short: "Run ociwf's own OCI registry (the ociwf-registry binary)",
		Long: `Registry runs ociwf's registry extension, the ociwf-registry binary:
CNCF Distribution with server-side tag immutability, referrers, an audit
log, metrics and lifecycle-aware pulls (docs/registry.md). "ociwf registry
ARGS..." is "ociwf-registry ARGS...": everything after "registry" is its
own, and "ociwf registry serve --help" prints its flags. It is looked for
beside the ociwf executable, then on PATH; install it with
"go install ociwf.dev/cmd/ociwf-registry@VERSION".`,
		Example: `  ociwf registry serve --addr 127.0.0.1:5000 --root ./ociwf-registry
  ociwf registry gc --root ./ociwf-registry --dry-run`,
		Annotations:        map[string]string{cli.LongRunning: "true"},
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.handOver(cmd.Context(), registryBinary, args)
		},
	}
}

// findBinary returns name's path beside the running executable, else on
// PATH; its error wraps cli.ErrNotInstalled.
func findBinary(name string) (string, error) {
	var beside string
	if self, err := os.Executable(); err == nil {
		if resolved, err := filepath.EvalSymlinks(self); err == nil {
			self = resolved
		}
		beside = filepath.Join(filepath.Dir(self), name)
		if fi, err := os.Stat(beside); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return beside, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	where := "on PATH"
	if beside != "" {
		where = fmt.Sprintf("beside ociwf (%s) or on PATH", filepath.Dir(beside))
	}
	return "", fmt.Errorf("%s is %w %s: the registry extension is a binary of its own; install it with `go install ociwf.dev/cmd/%s@%s`, or build it with `go build -o %s ./cmd/%s` in a clone (docs/registry.md)",
		name, cli.ErrNotInstalled, where, name, installVersion(), filepath.Dir(beside)+string(filepath.Separator)+name, name)
}

// installVersion is the version to name in an install hint: the one this
// ociwf was built from, else latest.
func installVersion() string {
	if v := cli.ToolVersion(); v != "(devel)" {
		return v
	}
	return "latest"
}

// handOver runs the binary name with args on ociwf's streams and
// environment until it exits. SIGINT and SIGTERM reach it as a signal
// to stop (ctx ends when ociwf gets one), and it dies with ociwf (see
// startChild). Its exit code becomes ociwf's; it has printed its own
// errors.
func (a *app) handOver(ctx context.Context, name string, args []string) error {
	path, err := findBinary(name)
	if err != nil {
		return err
	}
	// The child gets no deadline of ociwf's: its own --timeout applies.
	c := exec.Command(path, args...)
	c.Stdin, c.Stdout, c.Stderr = a.Stdin, a.Stdout, a.Stderr
	wait, err := startChild(c)
	if err != nil {
		return fmt.Errorf("run %s: %w", path, err)
	}
	done := make(chan error, 1)
	go func() { done <- wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		_ = c.Process.Signal(syscall.SIGTERM)
		select {
		case err = <-done:
		case <-time.After(time.Minute):
			_ = c.Process.Kill()
			err = <-done
		}
	}
	var exit *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &exit) && exit.ExitCode() > 0:
		return cli.Exited{Code: exit.ExitCode()}
	case errors.As(err, &exit):
		if ws, ok := exit.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			// As a shell reports it: 128 + the signal (141 for a closed
			// pipe, as in `ociwf registry --help | head`).
			return cli.Exited{Code: 128 + int(ws.Signal())}
		}
	}
	return fmt.Errorf("%s: %w", path, err)
}
