package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
)

func (a *app) auditCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Check the registry's audit log"}
	verify := &cobra.Command{
		Use:   "verify FILE",
		Short: "Check the hash chain of an audit log and count policy violations",
		Long: `Verify walks the audit log that ociwf registry serve --audit-log writes and
checks every link: each line decodes, its sequence number follows, it names
the hash of the line before, and its own hash matches the line's bytes.
Every broken link is listed by line number, and a broken log exits 3; after
a break the check continues from that line, so one edited or removed line is
one break. Denied requests among the intact entries are counted as policy
violations. The integrity monitor's results log (ociwf monitor --results-log)
has the same construction; its check entries are counted, with the failed
ones.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			f, err := os.Open(argv[0])
			if err != nil {
				return err
			}
			defer f.Close()
			rep, err := audit.Verify(f)
			if err != nil {
				return err
			}
			out := struct {
				File string `json:"file"`
				*audit.Report
				Violations int `json:"violations"`
			}{argv[0], rep, rep.Denied}
			a.emit(out, func(w io.Writer) {
				if rep.Broken == nil {
					fmt.Fprintf(w, "%s: %d entries, chain intact; %d policy violations (denied requests)", argv[0], rep.Entries, rep.Denied)
					if rep.Checks > 0 {
						fmt.Fprintf(w, "; %d monitor checks, %d failed", rep.Checks, rep.CheckFailures)
					}
					fmt.Fprintln(w)
					return
				}
				fmt.Fprintf(w, "%s: chain broken, %s; %d entries intact, %d policy violations among them\n", argv[0], breaks(rep), rep.Entries, rep.Denied)
				for _, b := range rep.Breaks {
					fmt.Fprintf(w, "  line %d: %s\n", b.Line, b.Reason)
				}
				if rep.MoreBreaks > 0 {
					fmt.Fprintf(w, "  … and %d more breaks\n", rep.MoreBreaks)
				}
			})
			if rep.Broken != nil {
				return reported{fmt.Errorf("audit log %s: %s, the first at line %d: %s: %w", argv[0], breaks(rep), rep.Broken.Line, rep.Broken.Reason, errdef.ErrVerification)}
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
