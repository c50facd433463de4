// Command ociwf compiles workflows, publishes them as immutable OCI artifacts
// and reads them back. Each command parses flags and calls the library; see
// `ociwf --help`.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	// KMS providers for --key URIs, linked in as cosign links them.
	_ "ociwf.dev/attest/kms"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
