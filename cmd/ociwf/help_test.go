package main

import (
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/cmd/internal/cli/clitest"
)

func newRoot() *cobra.Command {
	var discard strings.Builder
	a := &app{&cli.App{Stdin: strings.NewReader(""), Stdout: &discard, Stderr: &discard}}
	return a.rootCmd()
}

// Every command ociwf's help shows, completion and help included, has an
// example, and each example is a command line ociwf accepts.
func TestEveryCommandHasAnExample(t *testing.T) {
	clitest.CheckExamples(t, newRoot)
}

// Every command's --help exits 0 and shows its examples.
func TestHelpShowsExamples(t *testing.T) {
	clitest.CheckHelp(t, newRoot, func(args ...string) (string, int) {
		stdout, _, code := runCLI(t, args...)
		return stdout, code
	})
}

// ociwf completion writes a script for each shell cobra supports; the
// bash one is valid bash.
func TestCompletion(t *testing.T) {
	clitest.CheckCompletion(t, "ociwf", func(args ...string) (string, int) {
		stdout, _, code := runCLI(t, args...)
		return stdout, code
	})
}
