package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/attest/report"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/target"
)

func (a *app) reportCmd() *cobra.Command {
	var r remoteFlags
	var t trustFlags
	var opts report.Options
	var since, until string
	cmd := &cobra.Command{
		Use:   "report REPO... (--key PUB | --policy FILE) [--audit-log FILE] [--monitor-log FILE] [--since T] [--until T]",
		Short: "Compute the compliance report of repositories (Markdown, or --output json)",
		Long: `Report computes the compliance report of the repositories named (docs/operations.md,
"Compliance reports"): lifecycle states, signers and emergency exceptions
from the verified event chains; immutability coverage, review-to-publication
time and policy violations (denials in --audit-log); the audit trail's chain
verification; and the integrity monitor's success rate, violations and time
to detect (from --monitor-log). --since and --until (RFC 3339) bound the
period. What the records cannot tell is listed as not computed or not
knowable by a registry.

The text output (or --output markdown) is Markdown; --output json prints
the report.Report document; --output html writes one self-contained HTML
page (inline CSS and SVG, no script, nothing loaded from elsewhere): the
dashboard of state counts, the check success rate over time, violations,
signers and exceptions. --key trusts one key for one repository; name
several repositories with --policy.`,
		Annotations: map[string]string{cli.Outputs: "markdown,html", cli.ReadOnly: "true"},
		Example: `  ociwf report --plain-http 127.0.0.1:5000/team/build --policy policy.yaml --audit-log audit.jsonl --monitor-log checks.jsonl
  ociwf report --plain-http 127.0.0.1:5000/team/build --key ci.pub --since 2026-01-01T00:00:00Z --until 2026-04-01T00:00:00Z --output json
  ociwf report --plain-http 127.0.0.1:5000/team/build --policy policy.yaml --monitor-log checks.jsonl --output html > report.html`,
		Args: cli.Args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			for _, b := range []struct {
				s    string
				t    *time.Time
				flag string
			}{{since, &opts.Since, "--since"}, {until, &opts.Until, "--until"}} {
				if b.s == "" {
					continue
				}
				v, err := time.Parse(time.RFC3339, b.s)
				if err != nil {
					return cli.Usagef("%s %q: want an RFC 3339 time such as 2026-01-01T00:00:00Z", b.flag, b.s)
				}
				*b.t = v
			}
			if !opts.Since.IsZero() && !opts.Until.IsZero() && !opts.Until.After(opts.Since) {
				return cli.Usagef("--until %s is not after --since %s", until, since)
			}
			if opts.Concurrency < 1 {
				return cli.Usagef("--concurrency must be at least 1")
			}
			if t.key != "" && len(argv) > 1 {
				return cli.Usagef("--key trusts one key for one repository; name several repositories with --policy")
			}
			v, err := a.verifierFor(ctx, &r, &t, argv[0], func(tg *target.Source) error {
				if tg.Reference != "" {
					return cli.Usagef("name a repository, without :TAG or @DIGEST: %s", tg.Name)
				}
				return nil
			})
			if err != nil {
				return err
			}
			rep, err := report.Build(ctx, v, argv, opts)
			if err != nil {
				return err
			}
			var werr error
			switch a.Output {
			case "html":
				werr = report.HTML(a.Stdout, rep)
			case "markdown":
				werr = report.Markdown(a.Stdout, rep)
			default:
				a.Emit(rep, func(w io.Writer) { werr = report.Markdown(w, rep) })
			}
			if werr != nil {
				return fmt.Errorf("report: write: %w", werr)
			}
			return nil
		},
	}
	t.registerTrust(cmd, statusKeyHelp)
	r.register(cmd.Flags(), false)
	cmd.Flags().StringVar(&opts.AuditLog, "audit-log", "", "the registry's audit log: audit trail metrics and policy violations")
	cmd.Flags().StringVar(&opts.MonitorLog, "monitor-log", "", "the integrity monitor's results log: integrity metrics")
	cmd.Flags().StringVar(&since, "since", "", "start of the period (RFC 3339, inclusive)")
	cmd.Flags().StringVar(&until, "until", "", "end of the period (RFC 3339, exclusive)")
	cmd.Flags().IntVar(&opts.Concurrency, "concurrency", 8, "versions read at once")
	return cmd
}
