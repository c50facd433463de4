// Command ociwf compiles workflows, publishes them as immutable OCI artifacts
// and reads them back. Each command parses flags and calls the library; see
// `ociwf --help`. It links no KMS provider: KMS, k8s:// and gitlab:// key
// references go to sigstore KMS plugins on PATH (ociwf.dev/cmd/sigstore-kms-*).
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
