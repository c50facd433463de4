// Package cli is what ociwf's binaries share on the command line: the
// documented exit codes, the global flags (--output, --verbose,
// --timeout), JSON output, the progress line of a long operation on a
// terminal, and how an error is printed with what to do about it. Each
// binary builds its commands on an App and runs them with App.Run; the
// commands themselves parse flags and call the library.
package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/progress"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// Exit codes.
const (
	ExitOK           = 0
	ExitError        = 1
	ExitUsage        = 2
	ExitVerification = 3
	ExitImmutable    = 4
)

// UsageError marks a mistake in how the command was called.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usagef returns a UsageError with the formatted message.
func Usagef(format string, args ...any) error { return UsageError{fmt.Errorf(format, args...)} }

// Reported marks an error whose details the command already printed, so
// that JSON output stays one document.
type Reported struct{ Err error }

func (e Reported) Error() string { return e.Err.Error() }
func (e Reported) Unwrap() error { return e.Err }

// Exited is the exit code of a program a command handed over to, which
// has printed its own errors: Run exits with Code and prints nothing.
type Exited struct{ Code int }

func (e Exited) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// ExitCode maps an error to the documented exit codes; it is the only
// place that does. Usage errors are flag and argument mistakes and
// references or tags the library refused (errdef.ErrInvalidReference).
func ExitCode(err error) int {
	var ue UsageError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ue), errors.Is(err, errdef.ErrInvalidReference):
		return ExitUsage
	case errors.Is(err, errdef.ErrImmutable), errors.Is(err, errdef.ErrLifecycle):
		return ExitImmutable
	case errors.Is(err, errdef.ErrVerification):
		return ExitVerification
	default:
		return ExitError
	}
}

// App carries what every command shares: streams and global flags.
type App struct {
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	Output         string
	Verbose        bool
	Timeout        time.Duration
	cancel         context.CancelFunc // ends the --timeout deadline
	// term is Stderr when it is a terminal (TERM not dumb), which
	// progress lines are drawn on; set by Run.
	term *progress.Terminal
}

// DefaultTimeout bounds a command's registry work when --timeout is not
// given: long enough for a large publish or copy in CI, short enough that
// a stalled registry fails the job.
const DefaultTimeout = 5 * time.Minute

// Command annotations the App reads.
const (
	// LongRunning marks commands that run until stopped (a server, a
	// monitor's schedule): --timeout bounds them only when given.
	LongRunning = "ociwf.dev/long-running"
	// ReadOnly marks commands that never write to a registry: their
	// advice after a failure says nothing of what a rerun writes.
	ReadOnly = "ociwf.dev/read-only"
	// Outputs names the --output formats a command writes besides text
	// and json (comma-separated).
	Outputs = "ociwf/outputs"
)

// Root returns a root command named use with the global flags; add the
// binary's commands to it and pass it to Run.
func (a *App) Root(use, short string) *cobra.Command {
	root := &cobra.Command{
		Use:           use,
		Short:         short,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			formats := []string{"text", "json"}
			if more := cmd.Annotations[Outputs]; more != "" {
				formats = append(formats, strings.Split(more, ",")...)
			}
			if !slices.Contains(formats, a.Output) {
				last := len(formats) - 1
				return Usagef("--output must be %s or %s, not %q", strings.Join(formats[:last], ", "), formats[last], a.Output)
			}
			if a.Timeout < 0 {
				return Usagef("--timeout must not be negative, not %s", a.Timeout)
			}
			if !cmd.Flags().Changed("timeout") && cmd.Annotations[LongRunning] != "" {
				a.Timeout = 0
			}
			if a.Timeout > 0 {
				ctx, cancel := context.WithTimeoutCause(cmd.Context(), a.Timeout, errTimeout)
				a.cancel = cancel
				cmd.SetContext(ctx)
			}
			return nil
		},
	}
	root.PersistentFlags().StringVar(&a.Output, "output", "text", "output format: text or json")
	root.PersistentFlags().BoolVarP(&a.Verbose, "verbose", "v", false, "log progress to stderr")
	root.PersistentFlags().DurationVar(&a.Timeout, "timeout", DefaultTimeout, "deadline for the whole command, retries included (0: none; servers and monitor schedules have none unless given)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return UsageError{err} })
	return root
}

// Run executes root (from Root, with its commands added) on args and
// returns the exit code, having printed any error with what to do.
func (a *App) Run(ctx context.Context, root *cobra.Command, args []string) int {
	// The streams first: cobra's completion command takes its output
	// stream when Prepare adds it.
	a.term = progress.Open(a.Stderr, os.Getenv)
	root.SetIn(a.Stdin)
	root.SetOut(a.Stdout)
	root.SetErr(a.Stderr)
	Prepare(root)
	root.SetArgs(args)
	cmd, err := root.ExecuteContextC(ctx)
	if a.cancel != nil {
		a.cancel()
	}
	if err == nil {
		return ExitOK
	}
	var exited Exited
	if errors.As(err, &exited) {
		return exited.Code
	}
	err = withHint(err, a.Timeout, cmd == nil || cmd.Annotations[ReadOnly] == "")
	code := ExitCode(err)
	fmt.Fprintf(a.Stderr, "Error: %v\n", err)
	if code == ExitUsage {
		fmt.Fprintf(a.Stderr, "Run '%s --help' for usage.\n", root.Name())
	}
	var done Reported
	if (a.Output == "json" || outputArg(args) == "json") && !errors.As(err, &done) {
		a.EmitJSON(map[string]any{"error": err.Error(), "exitCode": code})
	}
	return code
}

// Prepare completes the command tree under root as Run executes it:
// cobra's own completion and help commands, added now with examples so
// that they refuse unknown subcommands too, and every command with
// subcommands refusing unknown ones. Run calls it; tests that walk the
// tree call it first. Calling it again changes nothing.
func Prepare(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	root.InitDefaultHelpCmd()
	name := root.Name()
	for _, c := range root.Commands() {
		switch c.Name() {
		case "completion":
			completionExamples(c, name)
		case "help":
			c.Example = helpExample(root)
		}
	}
	refuseUnknownCommands(root)
}

// completionExamples gives cobra's completion command and its shell
// subcommands examples, for the binary named name.
func completionExamples(c *cobra.Command, name string) {
	examples := map[string]string{
		"bash":       "  source <(" + name + " completion bash)\n  " + name + " completion bash > /etc/bash_completion.d/" + name,
		"zsh":        "  " + name + " completion zsh > \"${fpath[1]}/_" + name + "\"",
		"fish":       "  " + name + " completion fish | source\n  " + name + " completion fish > ~/.config/fish/completions/" + name + ".fish",
		"powershell": "  " + name + " completion powershell | Out-String | Invoke-Expression",
	}
	var all []string
	for _, sub := range c.Commands() {
		if ex, ok := examples[sub.Name()]; ok {
			sub.Example = ex
			all = append(all, strings.Split(ex, "\n")[0])
		}
	}
	c.Example = strings.Join(all, "\n")
}

// helpExample is the example of root's help command: help for root's
// first command in alphabetical order.
func helpExample(root *cobra.Command) string {
	for _, c := range root.Commands() {
		if c.IsAvailableCommand() && c.Name() != "help" && c.Name() != "completion" {
			return "  " + root.Name() + " help " + c.Name()
		}
	}
	return "  " + root.Name() + " help"
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
		return UsageError{errors.New(msg)}
	}
	if c.Run == nil && c.RunE == nil {
		c.RunE = func(cmd *cobra.Command, _ []string) error { return cmd.Help() }
	}
	for _, sub := range c.Commands() {
		refuseUnknownCommands(sub)
	}
}

// Args wraps a cobra positional-args check so its failures are usage
// errors.
func Args(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if err := check(cmd, a); err != nil {
			return UsageError{err}
		}
		return nil
	}
}

// Logger logs to stderr (LogWriter) with --verbose, and nowhere without
// it.
func (a *App) Logger() *slog.Logger {
	if !a.Verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(a.LogWriter(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LogWriter is where a command logs while it works: stderr, through the
// progress line's terminal when stderr is one, so that a line logged
// while an operation shows its progress clears that line first.
func (a *App) LogWriter() io.Writer {
	if a.term != nil {
		return a.term
	}
	return a.Stderr
}

// Progress starts the progress line of a long operation named label over
// items called unit, on stderr: only when stderr is a terminal (TERM not
// dumb) and the output is text. Otherwise it returns nil, a Bar that
// draws nothing, and the command's output is what it is without one.
// The caller ends it with Done.
func (a *App) Progress(label, unit string) *progress.Bar {
	if a.Output != "text" {
		return nil
	}
	return a.term.Start(label, unit)
}

// Level is the level of a long-running command's structured log: info,
// or debug with --verbose.
func (a *App) Level() slog.Level {
	if a.Verbose {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// Emit prints v as JSON in json mode, or calls text otherwise.
func (a *App) Emit(v any, text func(w io.Writer)) {
	if a.Output == "json" {
		a.EmitJSON(v)
		return
	}
	text(a.Stdout)
}

// EmitJSON prints v as indented JSON on stdout.
func (a *App) EmitJSON(v any) {
	enc := json.NewEncoder(a.Stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}
