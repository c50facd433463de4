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
the hash of the line before, and its own hash matches its content. The first
broken link is reported by line number and exits 3. Denied requests are
counted as policy violations.`,
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
				if rep.Broken != nil {
					fmt.Fprintf(w, "%s: chain broken at line %d: %s (%d entries before it)\n", argv[0], rep.Broken.Line, rep.Broken.Reason, rep.Entries)
					return
				}
				fmt.Fprintf(w, "%s: %d entries, chain intact; %d policy violations (denied requests)\n", argv[0], rep.Entries, rep.Denied)
			})
			if rep.Broken != nil {
				return reported{fmt.Errorf("audit log %s: line %d: %s: %w", argv[0], rep.Broken.Line, rep.Broken.Reason, errdef.ErrVerification)}
			}
			return nil
		},
	}
	cmd.AddCommand(verify)
	return cmd
}
