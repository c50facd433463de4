package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "audit",
		Short:   "Check the registry's audit log",
		Example: "  ociwf audit verify audit.jsonl",
	}
	verify := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "verify FILE...",
		Short:       "Check the hash chain of audit logs and count policy violations",
		Long: `Verify walks the audit log that ociwf registry serve --audit-log writes and
checks every link: each line decodes, its sequence number follows, it names
the hash of the line before, and its own hash matches the line's bytes.
Every broken link is listed by line number, and a broken log exits 3; after
a break the check continues from that line, so one edited or removed line is
one break. Denied requests among the intact entries are counted as policy
violations. The integrity monitor's results log (ociwf monitor --results-log)
has the same construction; its check entries are counted, with the failed
ones.

Replicas of one registry each keep their own log: give them all, and each
chain is checked on its own, with a line per log and a total; it exits 3 if
any of them is broken. A file that does not exist, or one named twice (by
the same path, a link or another path), is a usage error (exit 2); two
files that start with the same entry are copies of one chain and exit 3,
as their entries would be counted twice.
With several files, --output json gives
{"logs": [...], "total": {...}}.`,
		Example: `  ociwf audit verify audit.jsonl
  ociwf audit verify --output json replica-a.jsonl replica-b.jsonl
  ociwf audit verify monitor.jsonl`,
		Args: cli.Args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			// A log that is not there is a mistake in the command line,
			// found before any chain is read (as grep and ls exit 2).
			infos := make([]fs.FileInfo, len(argv))
			for i, path := range argv {
				fi, err := os.Stat(path)
				if errors.Is(err, fs.ErrNotExist) {
					return cli.Usagef("audit verify: no audit log at %s: name the files registry serve --audit-log writes (one per replica)", path)
				}
				infos[i] = fi
				for j := range i {
					if fi != nil && infos[j] != nil && os.SameFile(infos[j], fi) {
						return cli.Usagef("audit verify: %s and %s are the same file: name each replica's log once", argv[j], path)
					}
				}
			}
			var logs []logReport
			for i, path := range argv {
				rep, err := verifyLog(path)
				if err != nil {
					return err
				}
				for _, l := range logs[:i] {
					if l.SameChain(rep) {
						return fmt.Errorf("audit logs %s and %s are the same chain (copies?): both start with entry %s, and every log starts its own; check one of them: %w", l.File, path, rep.First, errdef.ErrVerification)
					}
				}
				logs = append(logs, logReport{File: path, Report: rep, Violations: rep.Denied})
			}
			total := auditTotal{Logs: len(logs)}
			var firstBroken *logReport
			for i := range logs {
				r := logs[i].Report
				total.Entries += r.Entries
				total.Violations += r.Denied
				total.Checks += r.Checks
				total.CheckFailures += r.CheckFailures
				if r.Broken != nil {
					total.Broken++
					total.Breaks += len(r.Breaks) + r.MoreBreaks
					if firstBroken == nil {
						firstBroken = &logs[i]
					}
				}
			}
			var out any = logs[0]
			if len(logs) > 1 {
				out = struct {
					Logs  []logReport `json:"logs"`
					Total auditTotal  `json:"total"`
				}{logs, total}
			}
			a.Emit(out, func(w io.Writer) {
				for _, l := range logs {
					printLog(w, l)
				}
				if len(logs) > 1 {
					fmt.Fprintf(w, "total: %d logs, %d broken; %d entries intact, %d policy violations (denied requests)", total.Logs, total.Broken, total.Entries, total.Violations)
					if total.Checks > 0 {
						fmt.Fprintf(w, "; %d monitor checks, %d failed", total.Checks, total.CheckFailures)
					}
					fmt.Fprintln(w)
				}
			})
			if b := firstBroken; b != nil {
				rep := b.Report
				err := fmt.Errorf("audit log %s: %s, the first at line %d: %s: %w", b.File, breaks(rep), rep.Broken.Line, rep.Broken.Reason, errdef.ErrVerification)
				if total.Broken > 1 {
					err = fmt.Errorf("%d of %d audit logs broken; %w", total.Broken, total.Logs, err)
				}
				return cli.Reported{Err: err}
			}
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}

// breaks says how many breaks rep found: "1 break", "3 breaks".
func breaks(rep *audit.Report) string {
	if n := len(rep.Breaks) + rep.MoreBreaks; n != 1 {
		return fmt.Sprintf("%d breaks", n)
	}
	return "1 break"
}

// logReport is what audit verify found in one log.
type logReport struct {
	File string `json:"file"`
	*audit.Report
	Violations int `json:"violations"`
}

// auditTotal sums the logs audit verify checked.
type auditTotal struct {
	Logs          int `json:"logs"`
	Broken        int `json:"broken"`
	Breaks        int `json:"breaks"`
	Entries       int `json:"entries"`
	Violations    int `json:"violations"`
	Checks        int `json:"checks,omitempty"`
	CheckFailures int `json:"checkFailures,omitempty"`
}

// verifyLog checks the audit log at path.
func verifyLog(path string) (*audit.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rep, err := audit.Verify(f)
	if err != nil {
		return nil, fmt.Errorf("audit log %s: %w", path, err)
	}
	return rep, nil
}

// printLog writes the summary of one log.
func printLog(w io.Writer, l logReport) {
	rep := l.Report
	if rep.Broken == nil {
		fmt.Fprintf(w, "%s: %d entries, chain intact; %d policy violations (denied requests)", l.File, rep.Entries, rep.Denied)
		if rep.Checks > 0 {
			fmt.Fprintf(w, "; %d monitor checks, %d failed", rep.Checks, rep.CheckFailures)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprintf(w, "%s: chain broken, %s; %d entries intact, %d policy violations among them\n", l.File, breaks(rep), rep.Entries, rep.Denied)
	for _, b := range rep.Breaks {
		fmt.Fprintf(w, "  line %d: %s\n", b.Line, b.Reason)
	}
	if rep.MoreBreaks > 0 {
		fmt.Fprintf(w, "  … and %d more breaks\n", rep.MoreBreaks)
	}
}
