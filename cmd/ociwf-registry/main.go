// Command ociwf-registry is ociwf's registry extension: the CNCF
// Distribution registry with server-side tag immutability, referrers,
// an audit log, metrics and lifecycle-aware pulls (docs/registry.md),
// and its garbage collector. It is a binary of its own so that the ociwf
// client links none of Distribution's storage drivers; `ociwf registry
// ...` runs it when it is installed beside ociwf or on PATH.
package main

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is what every command shares (cli.App: streams, global flags,
// output).
type app struct{ *cli.App }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{&cli.App{Stdin: stdin, Stdout: stdout, Stderr: stderr}}
	return a.Run(ctx, a.rootCmd(), args)
}

func (a *app) rootCmd() *cobra.Command {
	root := a.Root("ociwf-registry", "Run ociwf's own OCI registry (also run as `ociwf registry`)")
	root.Example = `  ociwf-registry serve --addr 127.0.0.1:5000 --root ./ociwf-registry
  ociwf-registry gc --root ./ociwf-registry --delete-untagged
  ociwf-registry serve --help`
	root.AddCommand(a.serveCmd(), a.gcCmd(), a.VersionCmd("ociwf-registry"))
	return root
}
