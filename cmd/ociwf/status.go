package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
)

// statusKeyHelp describes --key of the commands that only read chains.
const statusKeyHelp = "trust this public key (file or KMS URI) for the repository: a one-key policy whose key signs workflows and holds every lifecycle role, with no approvals required"

func (a *app) statusCmd() *cobra.Command {
	var r remoteFlags
	var t trustFlags
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "status REF (--key PUB | --policy FILE)",
		Short:       "Show a workflow version's verified lifecycle state and event chain",
		Long: `Status verifies the signatures and the signed lifecycle facts of the version
REF names (a tag or a digest), without the content checks of ociwf verify,
and prints its lifecycle state as computed from the verified event chain
(docs/lifecycle.md). It answers for versions in every state: retired and
archived versions stay readable for audit, and status exits 0 for them.

The first line is always "state: <state>". Then: the version, the trust
policy scope and the workflow signers; whether an emergency retirement
counted; the chain, one event per line (sequence, state, time, signers,
reason, replacement, short ID); the open review round (approvals k of n, by
whom, rejections, each decision); pending emergency retirements; and every
fact that did not count, as a warning.

--output json prints the verify.LifecycleStatus document. A broken, forked
or rolled-back chain exits 3 with the message (JSON: the status so far
with "error" and "exitCode"). The state file that detects rollbacks is
read and updated as by ociwf verify (--state-file, --no-state).`,
		Example: `  ociwf status --plain-http 127.0.0.1:5000/team/build:1.4.0 --policy policy.yaml
  ociwf status --plain-http 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --key ci.pub --output json`,
		Args: cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			v, err := a.verifierFor(ctx, &r, &t, argv[0], func(tg *target.Source) error {
				if tg.Reference == "" {
					return cli.Usagef("name a version: %s:TAG or %s@sha256:... (ociwf ls %s lists them)", argv[0], argv[0], argv[0])
				}
				return nil
			})
			if err != nil {
				return err
			}
			st, err := v.Lifecycle(ctx, argv[0])
			if err != nil {
				if st != nil && a.Output == "json" {
					a.EmitJSON(struct {
						*verify.LifecycleStatus
						Error    string `json:"error"`
						ExitCode int    `json:"exitCode"`
					}{st, err.Error(), cli.ExitCode(err)})
					return cli.Reported{Err: err}
				}
				return err
			}
			a.Emit(st, func(w io.Writer) { printStatus(w, st) })
			return nil
		},
	}
	t.registerTrust(cmd, statusKeyHelp)
	r.register(cmd.Flags(), false)
	return cmd
}

// timeFormat is how times are printed: UTC, to the second.
const timeFormat = "2006-01-02T15:04:05Z"

func utc(t time.Time) string { return t.UTC().Format(timeFormat) }

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}

// printStatus prints a verified lifecycle; its first line is
// "state: <state>".
func printStatus(w io.Writer, st *verify.LifecycleStatus) {
	fmt.Fprintf(w, "state: %s\n", st.State)
	fmt.Fprintf(w, "version: %s@%s\n", st.Repository, st.Digest)
	signed := orNone(st.Signers)
	if len(st.SignedTags) > 0 {
		signed += " (signed tags: " + strings.Join(st.SignedTags, ", ") + ")"
	}
	fmt.Fprintf(w, "trust policy: %s; workflow signers: %s\n", st.Scope, signed)
	if st.Emergency {
		fmt.Fprintln(w, "emergency: an emergency retirement counted in this chain")
	}
	if st.Implicit {
		fmt.Fprintln(w, "published by its signature alone: no lifecycle events, and the trust policy requires no approvals")
	}
	if st.Rejected {
		fmt.Fprintln(w, "rejected: the review was rejected; submit the version again to open a new round")
	}
	if len(st.Chain) == 0 {
		fmt.Fprintln(w, "chain: no lifecycle events")
	} else {
		fmt.Fprintf(w, "chain: %d event(s)\n", len(st.Chain))
	}
	if a := st.After; a != nil {
		fmt.Fprintf(w, "  follows event %s (%s, sequence %d), signed by no signer of this trust policy: not evaluated\n", a.ID, a.State, a.Sequence)
	}
	for _, l := range st.Chain {
		ev := l.Event
		fmt.Fprintf(w, "  %d  %-10s  %s  by %s", ev.Sequence, ev.State, utc(ev.Time), orNone(l.Signers))
		if ev.Actor != "" {
			fmt.Fprintf(w, " (actor %q)", ev.Actor)
		}
		if ev.Reason != "" {
			fmt.Fprintf(w, "  reason %q", ev.Reason)
		}
		if ev.Replacement != "" {
			fmt.Fprintf(w, "  replacement %s", ev.Replacement)
		}
		fmt.Fprintf(w, "  %s\n", shortID(l.ID))
		if e := ev.Emergency; e != nil {
			fmt.Fprintf(w, "     emergency: justification %q, impact %q, remediation %q; approved by %s\n", e.Justification, e.Impact, e.Remediation, orNone(voteSigners(l.Approvals)))
		}
	}
	if st.Round != nil {
		printRound(w, st.Round)
		for _, v := range append(append([]lifecycle.Vote(nil), st.Round.Approvals...), st.Round.Rejections...) {
			printVote(w, v)
		}
	}
	for i := range st.Pending {
		p := &st.Pending[i]
		fmt.Fprintf(w, "pending emergency retirement %s by %s at %s: %s; reason %q\n", shortID(p.ID), orNone(p.Signers), utc(p.Event.Time), emergencyCount(p), p.Event.Reason)
	}
	for _, warning := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", warning)
	}
}

// printVote prints one counted approval or rejection.
func printVote(w io.Writer, v lifecycle.Vote) {
	ap := v.Approval
	fmt.Fprintf(w, "  %s by %s at %s", ap.Decision, orNone(v.Signers), utc(ap.Time))
	if ap.Comment != "" {
		fmt.Fprintf(w, "  comment %q", ap.Comment)
	}
	if ap.Risk != nil {
		fmt.Fprintf(w, "  risk %s", ap.Risk.Level)
		if ap.Risk.Notes != "" {
			fmt.Fprintf(w, " (%s)", ap.Risk.Notes)
		}
	}
	if len(ap.Checklist) > 0 {
		n := map[string]int{}
		for _, it := range ap.Checklist {
			n[it.Outcome]++
		}
		var parts []string
		for _, o := range checklistOutcomes {
			if n[o] > 0 {
				parts = append(parts, fmt.Sprintf("%d %s", n[o], o))
			}
		}
		fmt.Fprintf(w, "  checklist %s", strings.Join(parts, ", "))
	}
	fmt.Fprintf(w, "  %s\n", shortID(v.ID))
}

func voteSigners(vs []lifecycle.Vote) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.Signers...)
	}
	return out
}

func (a *app) lsCmd() *cobra.Command {
	var r remoteFlags
	var t trustFlags
	var concurrency int
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "ls REPOSITORY (--key PUB | --policy FILE)",
		Short:       "List a repository's workflow versions with their lifecycle states",
		Long: `ls lists the version tags of REPOSITORY, one line each: the tag, the digest
(short), the lifecycle state computed from the verified event chain (as
ociwf status computes it), the workflow signers whose signatures verified,
and the time of the newest event (or, without events, "created" and the
manifest's creation time). cosign's accessory tags (sha256-<hex>.sig, .att,
...) and the referrers fallback's sha256-<hex> tags are not versions and
are skipped.

At most 10,000 tags are read (the registry's order); a repository with
more is listed truncated, with a warning on stderr. --concurrency versions
are read at once. --output json prints an array of versions.

A version whose chain fails verification (broken, forked, rolled back) is
listed with the error, and ls exits 3 after listing; one that could not be
read at all makes it exit 1.`,
		Example: `  ociwf ls --plain-http 127.0.0.1:5000/team/build --policy policy.yaml
  ociwf ls --plain-http 127.0.0.1:5000/team/build --key ci.pub --output json`,
		Args: cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if concurrency < 1 {
				return cli.Usagef("--concurrency must be at least 1")
			}
			ctx := cmd.Context()
			v, err := a.verifierFor(ctx, &r, &t, argv[0], func(tg *target.Source) error {
				if tg.Reference != "" {
					return cli.Usagef("ls takes a repository, without :TAG or @DIGEST: %s (ociwf status shows one version)", tg.Name)
				}
				return nil
			})
			if err != nil {
				return err
			}
			list, err := v.Versions(ctx, argv[0], verify.VersionsOptions{Concurrency: concurrency})
			if err != nil {
				return err
			}
			if list.Truncated {
				fmt.Fprintf(a.Stderr, "WARNING: %s has more than %d version tags: only the first %d are listed\n", list.Repository, list.MaxTags, list.MaxTags)
			}
			a.Emit(list.Versions, func(w io.Writer) { printVersions(w, list) })
			failed, broken := 0, 0
			for _, ver := range list.Versions {
				switch {
				case ver.Failed:
					failed++
				case ver.Error != "":
					broken++
				}
			}
			switch {
			case failed > 0:
				return cli.Reported{Err: fmt.Errorf("ls %s: the lifecycle chains of %d of %d versions failed verification: %w", list.Repository, failed, len(list.Versions), errdef.ErrVerification)}
			case broken > 0:
				return cli.Reported{Err: fmt.Errorf("ls %s: %d of %d versions could not be read", list.Repository, broken, len(list.Versions))}
			}
			return nil
		},
	}
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "versions read at once")
	t.registerTrust(cmd, statusKeyHelp)
	r.register(cmd.Flags(), false)
	return cmd
}

// printVersions prints one line per version, then the errors.
func printVersions(w io.Writer, list *verify.VersionList) {
	if len(list.Versions) == 0 {
		fmt.Fprintf(w, "%s has no version tags\n", list.Repository)
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var errs []string
	for _, v := range list.Versions {
		state := string(v.State)
		if v.Emergency {
			state += " (emergency)"
		}
		if v.Error != "" {
			state = "error"
			errs = append(errs, fmt.Sprintf("%s: %s", v.Tag, v.Error))
		}
		date := "-"
		switch {
		case v.LastEvent != nil:
			date = utc(*v.LastEvent)
		case v.Created != nil:
			date = "created " + utc(*v.Created)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", v.Tag, shortDigest(v.Digest), orDash(state), orDash(strings.Join(v.Signers, ",")), date)
	}
	_ = tw.Flush()
	for _, e := range errs {
		fmt.Fprintf(w, "error: %s\n", e)
	}
}

func shortDigest(d string) string {
	if d == "" {
		return "-"
	}
	return shortID(d)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
