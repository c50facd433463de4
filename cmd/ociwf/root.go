package main

import (
	"context"
	"io"
	"os"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/lifecycle"
)

// app is what every ociwf command shares (cli.App: streams, global flags,
// output) with the helpers defined on it in this package.
type app struct{ *cli.App }

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{&cli.App{Stdin: stdin, Stdout: stdout, Stderr: stderr}}
	return a.Run(ctx, a.rootCmd(), args)
}

func (a *app) rootCmd() *cobra.Command {
	root := a.Root("ociwf", "Store workflows as signed, immutable OCI artifacts")
	root.Example = `  ociwf compile --offline --graph mermaid wf.yaml
  ociwf push --plain-http wf.yaml 127.0.0.1:5000/workflows/build
  COSIGN_PASSWORD=... ociwf publish --plain-http --key cosign.key wf.yaml 127.0.0.1:5000/workflows/build:1.0.0
  ociwf verify --plain-http --key cosign.pub 127.0.0.1:5000/workflows/build:1.0.0
  ociwf push --help`
	root.AddCommand(a.compileCmd(), a.pushCmd(), a.pullCmd(), a.inspectCmd(), a.publishCmd(), a.signCmd(), a.attestCmd(), a.verifyCmd(), a.reviewCmd(), a.decideCmd(lifecycle.Approve), a.decideCmd(lifecycle.Reject), a.lifecycleCmd(), a.statusCmd(), a.lsCmd(), a.copyCmd(), a.keyCmd(), a.registryCmd(), a.auditCmd(), a.monitorCmd(), a.reportCmd(), a.VersionCmd("ociwf", registryExtension()))
	return root
}

// registryExtension is ociwf-registry as ociwf version reports it.
func registryExtension() cli.Extension {
	return cli.Extension{Name: registryBinary, Find: func() (string, error) { return findBinary(registryBinary) }}
}

// sourceDateEpoch reads SOURCE_DATE_EPOCH (reproducible-builds.org); zero
// time when unset.
func sourceDateEpoch() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		return time.Time{}, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, cli.Usagef("SOURCE_DATE_EPOCH=%q is not a non-negative integer of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}
