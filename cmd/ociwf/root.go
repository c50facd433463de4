package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
)

// Exit codes.
const (
	exitOK           = 0
	exitError        = 1
	exitUsage        = 2
	exitVerification = 3
	exitImmutable    = 4
)

// usageError marks a mistake in how the command was called.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// exitCode maps an error to the documented exit codes; it is the only place
// that does. Usage errors are flag and argument mistakes and references or
// tags the library refused (errdef.ErrInvalidReference).
func exitCode(err error) int {
	var ue usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue), errors.Is(err, errdef.ErrInvalidReference):
		return exitUsage
	case errors.Is(err, errdef.ErrImmutable), errors.Is(err, errdef.ErrLifecycle):
		return exitImmutable
	case errors.Is(err, errdef.ErrVerification):
		return exitVerification
	default:
		return exitError
	}
}

// app carries what every command shares: streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	output         string
	verbose        bool
	timeout        time.Duration
	cancel         context.CancelFunc // ends the --timeout deadline
}

// defaultTimeout bounds a command's registry work when --timeout is not
// given: long enough for a large publish or copy in CI, short enough that
// a stalled registry fails the job.
const defaultTimeout = 5 * time.Minute

// longRunning marks commands that run until stopped (a server, a
// monitor's schedule): --timeout bounds them only when given.
const longRunning = "ociwf.dev/long-running"

// readOnly marks commands that never write to a registry: their advice
// after a failure says nothing of what a rerun writes.
const readOnly = "ociwf.dev/read-only"

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	if err == nil {
		return exitOK
	}
	err = withHint(err, a.timeout, cmd == nil || cmd.Annotations[readOnly] == "")
	code := exitCode(err)
	fmt.Fprintf(stderr, "Error: %v\n", err)
	if code == exitUsage {
		fmt.Fprintln(stderr, "Run 'ociwf --help' for usage.")
	}
	var done reported
	if (a.output == "json" || outputArg(args) == "json") && !errors.As(err, &done) {
		a.emitJSON(map[string]any{"error": err.Error(), "exitCode": code})
	}
	return code
}

// errTimeout is the cause of a context ended by --timeout.
var errTimeout = fmt.Errorf("the --timeout deadline passed: %w", context.DeadlineExceeded)

// withHint adds what to do to an error caused by an unavailable registry
// or the deadline: rerun, and for a command that writes, that nothing was
// tagged and a rerun reuses what was stored.
func withHint(err error, timeout time.Duration, writes bool) error {
	var mismatch *target.DigestMismatchError
	reuse := ""
	if writes {
		reuse = "; what was stored is reused, nothing is written twice"
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w\n(the command ran out of time, --timeout %s: rerun it, with a longer --timeout if the registry is slow%s)", err, timeout, reuse)
	case errors.As(err, &mismatch) && !strings.Contains(err.Error(), mismatch.Error()):
		return fmt.Errorf("%w\n(%v)", err, mismatch)
	case errors.Is(err, errdef.ErrUnavailable), errors.Is(err, io.ErrUnexpectedEOF):
		return fmt.Errorf("%w\n(the registry failed: rerun the command once it answers again%s)", err, reuse)
	}
	return err
}

// outputArg returns the last --output value on the command line, read
// without cobra: a command line cobra could not parse (an unknown flag
// before --output, say) still asks for JSON.
func outputArg(args []string) string {
	out := ""
	for i, arg := range args {
		switch {
		case arg == "--":
			return out
		case arg == "--output" && i+1 < len(args):
			out = args[i+1]
		case strings.HasPrefix(arg, "--output="):
			out = strings.TrimPrefix(arg, "--output=")
		}
	}
	return out
}

// outputsAnnotation names, in a command's annotations, the --output
// formats it writes besides text and json (comma-separated).
const outputsAnnotation = "ociwf/outputs"

func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ociwf",
		Short:         "Store workflows as signed, immutable OCI artifacts",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			formats := []string{"text", "json"}
			if more := cmd.Annotations[outputsAnnotation]; more != "" {
				formats = append(formats, strings.Split(more, ",")...)
			}
			if !slices.Contains(formats, a.output) {
				last := len(formats) - 1
				return usagef("--output must be %s or %s, not %q", strings.Join(formats[:last], ", "), formats[last], a.output)
			}
			if a.timeout < 0 {
				return usagef("--timeout must not be negative, not %s", a.timeout)
			}
			if !cmd.Flags().Changed("timeout") && cmd.Annotations[longRunning] != "" {
				a.timeout = 0
			}
			if a.timeout > 0 {
				ctx, cancel := context.WithTimeoutCause(cmd.Context(), a.timeout, errTimeout)
				a.cancel = cancel
				cmd.SetContext(ctx)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.output, "output", "text", "output format: text or json")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log progress to stderr")
	root.PersistentFlags().DurationVar(&a.timeout, "timeout", defaultTimeout, "deadline for the whole command, retries included (0: none; servers and monitor schedules have none unless given)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(a.compileCmd(), a.pushCmd(), a.pullCmd(), a.inspectCmd(), a.publishCmd(), a.signCmd(), a.attestCmd(), a.verifyCmd(), a.reviewCmd(), a.decideCmd(lifecycle.Approve), a.decideCmd(lifecycle.Reject), a.lifecycleCmd(), a.statusCmd(), a.lsCmd(), a.copyCmd(), a.keyCmd(), a.registryCmd(), a.auditCmd(), a.monitorCmd(), a.reportCmd(), a.versionCmd())
	// Add cobra's own completion and help commands now, so that they
	// refuse unknown subcommands too.
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	refuseUnknownCommands(root)
	return root
}

// refuseUnknownCommands makes c and every command under it that has
// subcommands refuse an unknown subcommand as a usage error, and print
// its help when called alone. Cobra checks only below the root, with an
// untyped error, and shows help for "ociwf key bogus".
func refuseUnknownCommands(c *cobra.Command) {
	if !c.HasSubCommands() {
		return
	}
	c.Args = func(cmd *cobra.Command, argv []string) error {
		if len(argv) == 0 {
			return nil
		}
		msg := fmt.Sprintf("unknown command %q for %q", argv[0], cmd.CommandPath())
		if s := cmd.SuggestionsFor(argv[0]); len(s) > 0 {
			msg += "; did you mean " + strings.Join(s, " or ") + "?"
		}
		return usageError{errors.New(msg)}
	}
	if c.Run == nil && c.RunE == nil {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		refuseUnknownCommands(sub)
	}
}

// args wraps a cobra positional-args check so its failures are usage errors.
func args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return usageError{err}
		}
		return nil
	}
}

func (a *app) logger() *slog.Logger {
	if !a.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// emit prints v as JSON in json mode, or calls text otherwise.
func (a *app) emit(v any, text func(w io.Writer)) {
	if a.output == "json" {
		a.emitJSON(v)
		return
	}
	text(a.stdout)
}

func (a *app) emitJSON(v any) {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
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
		return time.Time{}, usagef("SOURCE_DATE_EPOCH=%q is not a non-negative integer of seconds", s)
	}
	return time.Unix(n, 0).UTC(), nil
}

// toolVersion is the module version ociwf was built from.
func toolVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

func (a *app) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the ociwf version",
		Args:  args(cobra.NoArgs),
		RunE: func(*cobra.Command, []string) error {
			v := toolVersion()
			a.emit(map[string]string{"version": v}, func(w io.Writer) { fmt.Fprintln(w, v) })
			return nil
		},
	}
}
