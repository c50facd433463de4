package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"go.yaml.in/yaml/v3"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// stateFlags choose the lifecycle state store: the highest event chain
// seen per version, which makes a rollback (events deleted from the
// registry) detectable. Every command that reads a chain takes them.
type stateFlags struct {
	file string
	none bool
}

func (s *stateFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&s.file, "state-file", "", "lifecycle state file, the highest event chain seen per version, for rollback detection (default $XDG_STATE_HOME/ociwf/lifecycle.json, else ~/.local/state/ociwf/lifecycle.json)")
	fs.BoolVar(&s.none, "no-state", false, "keep no lifecycle state: only the chain the registry serves is checked, so deleted events (a rollback) go unnoticed")
}

// store returns the state store the flags choose; nil with --no-state.
func (s *stateFlags) store() (lifecycle.StateStore, error) {
	switch {
	case s.none && s.file != "":
		return nil, cli.Usagef("--state-file and --no-state are mutually exclusive")
	case s.none:
		return nil, nil
	case s.file != "":
		return lifecycle.NewFileStore(s.file), nil
	}
	path, err := lifecycle.DefaultStatePath()
	if err != nil {
		return nil, fmt.Errorf("%w (set XDG_STATE_HOME, or pass --state-file PATH or --no-state)", err)
	}
	return lifecycle.NewFileStore(path), nil
}

// governFlags are the flags of the commands that record lifecycle facts:
// the signing key, the trust policy, where the statements go and the
// state store.
type governFlags struct {
	remote  remoteFlags
	signer  signerFlags
	storage storage
	state   stateFlags
	policy  string
	actor   string
}

func (g *governFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&g.policy, "policy", "", "trust policy naming the lifecycle signers and roles (docs/lifecycle.md); default: a one-key policy trusting --key's public key for every role, with no approvals required")
	fs.StringVar(&g.actor, "actor", "", "who records the fact, as you name yourself (informational: the signature is what the policy checks)")
	g.signer.register(fs)
	storageFlag(fs, &g.storage)
	g.state.register(fs)
	g.remote.register(fs, false)
}

// recorder opens the version ref names, loads the signing key and
// returns a Recorder reading the chain under the trust policy; close
// releases the key.
func (a *app) recorder(ctx context.Context, g *governFlags, ref string) (rec *govern.Recorder, signer *accessory.Signer, closeFn func(), err error) {
	ropts, err := g.storage.options(a.Logger())
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := g.state.store()
	if err != nil {
		return nil, nil, nil, err
	}
	if err := g.signer.check(); err != nil {
		return nil, nil, nil, err
	}
	if g.policy == "" && g.signer.opts.Keyless {
		return nil, nil, nil, cli.Usagef("--keyless needs --policy FILE naming the keyless identity: without a policy, the signing key's public key is what is trusted")
	}
	o, err := g.remote.opener(a.Stdin)
	if err != nil {
		return nil, nil, nil, err
	}
	src, err := o.OpenReadOnly(ctx, ref)
	if err != nil {
		return nil, nil, nil, err
	}
	if src.Reference == "" {
		return nil, nil, nil, cli.Usagef("name a version: %s:TAG or %s@sha256:...", ref, ref)
	}
	var pol *trust.Policy
	if g.policy != "" {
		if pol, err = trust.Load(g.policy); err != nil {
			return nil, nil, nil, err
		}
	}
	signer, err = g.signer.loader(a)(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	cleanup := func() {}
	if pol == nil {
		if pol, cleanup, err = signerPolicy(signer, g.signer.opts.Key, src.Name); err != nil {
			signer.Close()
			return nil, nil, nil, err
		}
	}
	closeFn = func() { signer.Close(); cleanup() }
	v, err := verify.New(pol, o, verify.Options{StateStore: store, Logger: a.Logger()})
	if err == nil {
		rec, err = govern.New(v, accessory.NewRegistry(o, ropts), govern.Options{Logger: a.Logger()})
	}
	if err != nil {
		closeFn()
		return nil, nil, nil, err
	}
	return rec, signer, closeFn, nil
}

// signerPolicy is the one-key trust policy of a signing key for repo: the
// key's public key, named name, signs workflows and holds every lifecycle
// role, and no approvals are required. The verifier loads keys from
// files, so the public key is written to a private temporary directory
// that remove deletes.
func signerPolicy(s *accessory.Signer, name, repo string) (pol *trust.Policy, remove func(), err error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("public key of %s: %w", name, err)
	}
	pem, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, nil, fmt.Errorf("public key of %s: %w", name, err)
	}
	dir, err := os.MkdirTemp("", "ociwf-key-")
	if err != nil {
		return nil, nil, fmt.Errorf("public key of %s: %w", name, err)
	}
	remove = func() { os.RemoveAll(dir) }
	path := filepath.Join(dir, "signer.pub")
	if err := os.WriteFile(path, pem, 0o600); err != nil {
		remove()
		return nil, nil, fmt.Errorf("public key of %s: %w", name, err)
	}
	pol = trust.KeyPolicy(path, repo, trust.KeyPolicyOptions{Name: "--key"})
	pol.TrustPolicies[0].Signers[0].Name = name
	return pol, remove, nil
}

// governResult is what a recording command prints: the library's result,
// with existing always present.
type governResult struct {
	*govern.Result
	Existing bool `json:"existing"`
}

// printRecorded prints what a recording command did; what names the fact
// ("review submission", "approval", ...).
func (a *app) printRecorded(res *govern.Result, what string) {
	a.Emit(governResult{res, res.Existing}, func(w io.Writer) {
		if res.Status != nil {
			for _, warning := range res.Status.Warnings {
				fmt.Fprintf(a.Stderr, "WARNING: %s\n", warning)
			}
		}
		if res.Existing {
			fmt.Fprintf(w, "Already recorded: %s of %s (%s); nothing written\n", what, res.Reference, res.ID)
			if res.Note != "" {
				fmt.Fprintf(a.Stderr, "NOTE: %s\n", res.Note)
			}
		} else {
			fmt.Fprintf(w, "Recorded %s of %s (%s)\n", what, res.Reference, res.ID)
		}
		if res.From != res.State {
			fmt.Fprintf(w, "state: %s (was %s)\n", res.State, res.From)
		} else {
			fmt.Fprintf(w, "state: %s\n", res.State)
		}
		if res.Status != nil && res.Status.Round != nil {
			printRound(w, res.Status.Round)
		}
		if p := res.Pending; p != nil {
			fmt.Fprintf(w, "emergency retirement %s is pending: %s; the state stays %s until then\n", shortID(p.ID), emergencyCount(p), res.State)
		}
	})
}

// reasonFlags are a transition's reason and replacement.
type reasonFlags struct {
	reason, replacement string
}

func (r *reasonFlags) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&r.reason, "reason", "", "why the version is "+what+" (required)")
	fs.StringVar(&r.replacement, "replacement", "", "the version to use instead, pinned by digest: REGISTRY/REPOSITORY@sha256:...")
}

func (r *reasonFlags) check() error {
	if strings.TrimSpace(r.reason) == "" {
		return cli.Usagef("--reason TEXT is required: say why")
	}
	return nil
}

func (a *app) reviewCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "review",
		Short:   "Submit a workflow version for review",
		Example: "  COSIGN_PASSWORD=... ociwf review submit --plain-http 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --key alice.key --policy policy.yaml",
	}
	var g governFlags
	submit := &cobra.Command{
		Use:   "submit REF --key KEY [--policy FILE]",
		Short: "Submit a version for review, freezing its digest",
		Long: `Submit records a signed lifecycle event moving the version REF names (a tag or
a digest; the event names the digest) from draft to review: from then on
approvals and rejections of that digest are accepted, and any change of
content is another version. The event is an in-toto statement of type
https://ociwf.dev/lifecycle/event/v1, signed with --key and stored beside the
version like any attestation (docs/lifecycle.md).

The trust policy (--policy) says who may submit (lifecycle.submit); the
command refuses, before signing anything, a key the policy does not allow
and a version that is not a draft (exit 4, naming the rule and the allowed
transitions). Without --policy, --key's own public key is trusted for every
role. Submitting again writes nothing and says so. A rejected review is a
draft again: submitting it opens a new round.`,
		Example: `  COSIGN_PASSWORD=... ociwf review submit --plain-http 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --key alice.key --policy policy.yaml`,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			rec, signer, done, err := a.recorder(ctx, &g, argv[0])
			if err != nil {
				return err
			}
			defer done()
			res, err := rec.Transition(ctx, argv[0], signer, lifecycle.Review, govern.EventOptions{Actor: g.actor})
			if err != nil {
				return err
			}
			a.printRecorded(res, "review submission")
			return nil
		},
	}
	g.register(submit)
	cmd.AddCommand(submit)
	return cmd
}

// decisionFlags are an approval's or rejection's details.
type decisionFlags struct {
	comment, checklist, risk, riskNotes, request string
	emergency                                    bool
}

func (d *decisionFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&d.comment, "comment", "", "the reviewer's comment")
	fs.StringVar(&d.checklist, "checklist", "", "review checklist outcomes: a YAML or JSON file listing {item, outcome: pass|fail|n/a, note}")
	fs.StringVar(&d.risk, "risk", "", "risk assessment: low, medium, high or critical")
	fs.StringVar(&d.riskNotes, "risk-notes", "", "notes on the risk assessment (with --risk)")
	fs.BoolVar(&d.emergency, "emergency", false, "decide the pending emergency retirement instead of the open review (emergency approver set)")
	fs.StringVar(&d.request, "request", "", "the ID (sha256:...) of the submission or emergency retirement decided; it must be the open one")
}

// options checks the flags and reads the checklist file.
func (d *decisionFlags) options(actor string) (govern.ApprovalOptions, error) {
	opts := govern.ApprovalOptions{Actor: actor, Comment: d.comment, Emergency: d.emergency, Request: d.request}
	if d.request != "" && !lifecycle.ValidID(d.request) {
		return opts, cli.Usagef("--request %q: want the ID of the submission or emergency retirement, sha256:<64 hex digits> (ociwf status shows it)", d.request)
	}
	switch {
	case d.risk != "":
		if !slices.Contains([]string{"low", "medium", "high", "critical"}, d.risk) {
			return opts, cli.Usagef("--risk %q: want low, medium, high or critical", d.risk)
		}
		opts.Risk = &lifecycle.Risk{Level: d.risk, Notes: d.riskNotes}
	case d.riskNotes != "":
		return opts, cli.Usagef("--risk-notes goes with --risk LEVEL")
	}
	if d.checklist != "" {
		items, err := readChecklist(d.checklist)
		if err != nil {
			return opts, err
		}
		opts.Checklist = items
	}
	return opts, nil
}

// maxChecklist bounds checklist files.
const maxChecklist = 1 << 20

// checklistOutcomes are the outcomes a checklist item may have.
var checklistOutcomes = []string{"pass", "fail", "n/a"}

// readChecklist reads a review checklist: a YAML (or JSON) list of items
// with an outcome each. A file that does not parse, or breaks the
// format, is an error matching errdef.ErrInvalid (exit 1).
func readChecklist(path string) ([]lifecycle.ChecklistItem, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checklist: %w", err)
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxChecklist+1))
	if err != nil {
		return nil, fmt.Errorf("checklist %s: %w", path, err)
	}
	if len(raw) > maxChecklist {
		return nil, fmt.Errorf("checklist %s is larger than %d bytes: %w", path, maxChecklist, errdef.ErrTooLarge)
	}
	var items []struct {
		Item    string `yaml:"item"`
		Outcome string `yaml:"outcome"`
		Note    string `yaml:"note"`
	}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&items); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("checklist %s: %v (want a list of {item, outcome: pass|fail|n/a, note}): %w", path, err, errdef.ErrInvalid)
	}
	if len(items) == 0 {
		return nil, fmt.Errorf("checklist %s lists no items (want a list of {item, outcome: pass|fail|n/a, note}): %w", path, errdef.ErrInvalid)
	}
	out := make([]lifecycle.ChecklistItem, len(items))
	for i, it := range items {
		if strings.TrimSpace(it.Item) == "" {
			return nil, fmt.Errorf("checklist %s: item %d has no item text: %w", path, i+1, errdef.ErrInvalid)
		}
		if !slices.Contains(checklistOutcomes, it.Outcome) {
			return nil, fmt.Errorf("checklist %s: item %d (%q): outcome %q, want pass, fail or n/a: %w", path, i+1, it.Item, it.Outcome, errdef.ErrInvalid)
		}
		out[i] = lifecycle.ChecklistItem{Item: it.Item, Outcome: it.Outcome, Note: it.Note}
	}
	return out, nil
}

// decideCmd is approve or reject.
func (a *app) decideCmd(d lifecycle.Decision) *cobra.Command {
	var g governFlags
	var df decisionFlags
	verb, noun, effect := "approve", "approval", `Once the approvals the trust policy requires (lifecycle.approve: a threshold
of a set of signers, none of them the author) are recorded, the version is
approved and may be published.`
	example := `  ociwf approve --plain-http 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --key bob.key --policy policy.yaml --comment "looks right" --checklist checklist.yaml --risk low
  ociwf approve --plain-http 127.0.0.1:5000/team/build:1.5.0 --key carol.key --policy policy.yaml --emergency`
	if d == lifecycle.Reject {
		verb, noun, effect = "reject", "rejection", `One counted rejection puts the version back to draft; submitting it again
opens a new round without approvals.`
		example = `  ociwf reject --plain-http 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --key carol.key --policy policy.yaml --comment "missing tests" --checklist checklist.yaml`
	}
	cmd := &cobra.Command{
		Use:   verb + " REF --key KEY [--policy FILE]",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " a version's open review (--emergency: a pending emergency retirement)",
		Long: `The command records a signed ` + noun + ` of the open review of the version REF names: an in-toto
statement of type https://ociwf.dev/lifecycle/approval/v1 naming the review
submission it decides (docs/lifecycle.md), signed with --key and stored
beside the version. ` + effect + `

--emergency decides the pending emergency retirement instead: it counts
once the policy's emergency approver set (lifecycle.emergency) reached its
threshold. --request names the submission or retirement by its ID when
more than one is pending.

--comment, --checklist FILE (a YAML or JSON list of {item, outcome:
pass|fail|n/a, note}), --risk low|medium|high|critical and --risk-notes are
recorded with the decision. A bad flag value exits 2; a checklist file that
does not parse or breaks the format exits 1.

The command refuses, before signing anything (exit 4, naming the rule and
the allowed transitions): a key the policy does not allow to ` + verb + `, the
author deciding their own submission, and a version with no open review.
Deciding again with the same key writes nothing and says so.`,
		Example: example,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			opts, err := df.options(g.actor)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			rec, signer, done, err := a.recorder(ctx, &g, argv[0])
			if err != nil {
				return err
			}
			defer done()
			res, err := rec.Decide(ctx, argv[0], signer, d, opts)
			if err != nil {
				return err
			}
			what := noun
			if df.emergency {
				what = "emergency " + noun
			}
			a.printRecorded(res, what)
			return nil
		},
	}
	df.register(cmd.Flags())
	g.register(cmd)
	return cmd
}

func (a *app) lifecycleCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lifecycle",
		Short: "Deprecate, retire, archive, quarantine or release a workflow version",
		Long: `The lifecycle commands record a signed lifecycle event of the version REF
names (docs/lifecycle.md): deprecate (published -> deprecated: runtimes
warn, new references are refused), retire (published or deprecated ->
retired: verify, pull and runtimes refuse it; status still reads it) and
archive (retired -> archived), quarantine (published or deprecated ->
quarantined: refused like a retired version; ociwf monitor --quarantine-key
records it when an integrity check fails) and release (quarantined -> the
state before). Each but release needs --reason; --replacement names the
version to use instead, pinned by digest.

A transition the state machine or the trust policy does not allow is
refused before anything is signed, with exit 4 naming the rule and the
allowed transitions. Recording the same state again writes nothing.`,
		Example: `  ociwf lifecycle deprecate --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "use 1.5.0"
  ociwf lifecycle retire --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "CVE-2026-1234 in the test image"`,
	}
	cmd.AddCommand(
		a.eventCmd("deprecate", lifecycle.Deprecated, "deprecated",
			"Deprecate a published version: runtimes warn, new references are refused",
			`  ociwf lifecycle deprecate --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "use 1.5.0" --replacement 127.0.0.1:5000/team/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599`),
		a.eventCmd("retire", lifecycle.Retired, "retired",
			"Retire a published or deprecated version: verify, pull and runtimes refuse it",
			`  ociwf lifecycle retire --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "CVE-2026-1234 in the test image"
  ociwf lifecycle retire --plain-http 127.0.0.1:5000/team/build:1.5.0 --key ops.key --policy policy.yaml --emergency \
    --reason "credential leak" --justification "tokens printed to logs" --impact "every run since 1.5.0" --remediation "rotate tokens; publish 1.5.1"`),
		a.eventCmd("archive", lifecycle.Archived, "archived",
			"Archive a retired version: kept read-only for compliance",
			`  ociwf lifecycle archive --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "retention: 7 years"`),
		a.eventCmd("quarantine", lifecycle.Quarantined, "quarantined",
			"Quarantine a published or deprecated version: verify, pull and runtimes refuse it until it is released",
			`  ociwf lifecycle quarantine --plain-http 127.0.0.1:5000/team/build:1.4.0 --key monitor.key --policy policy.yaml --reason "blobs check failed"`),
		a.releaseCmd(),
	)
	return cmd
}

// releaseCmd is ociwf lifecycle release.
func (a *app) releaseCmd() *cobra.Command {
	var g governFlags
	var reason string
	cmd := &cobra.Command{
		Use:   "release REF --key KEY [--policy FILE] [--reason TEXT]",
		Short: "Release a quarantined version back to the state it was in before",
		Long: `Release records a signed lifecycle event returning the quarantined version REF
names to the state it was in before its quarantine (published or
deprecated). The trust policy (--policy) says who may (lifecycle.release;
default the workflow signers); a key it does not allow, or a version that is
not quarantined, is refused before anything is signed (exit 4). Check the
version first: ociwf verify must pass but for its lifecycle state.`,
		Example: `  ociwf lifecycle release --plain-http 127.0.0.1:5000/team/build:1.4.0 --key ops.key --policy policy.yaml --reason "blob restored from backup"`,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			rec, signer, done, err := a.recorder(ctx, &g, argv[0])
			if err != nil {
				return err
			}
			defer done()
			res, err := rec.Release(ctx, argv[0], signer, govern.EventOptions{Actor: g.actor, Reason: reason})
			if err != nil {
				return err
			}
			a.printRecorded(res, "release")
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the version is released")
	g.register(cmd)
	return cmd
}

// eventCmd is one of the lifecycle subcommands.
func (a *app) eventCmd(verb string, to lifecycle.State, participle, short, example string) *cobra.Command {
	var g governFlags
	var r reasonFlags
	var emergency bool
	var em lifecycle.Emergency
	long := `The command records a signed lifecycle event moving the version REF names
(a tag or a digest; the event names the digest) to ` + string(to) + `: an in-toto
statement of type https://ociwf.dev/lifecycle/event/v1 linked to the newest
event of the version's chain, signed with --key and stored beside the
version (docs/lifecycle.md). --reason is required; --replacement names the
version to use instead, pinned by digest.

The trust policy (--policy) says who may do this (lifecycle.` + verb + `); the
command refuses, before signing anything, a key the policy does not allow
and a transition the state machine does not allow (exit 4, naming the rule
and the allowed transitions). Without --policy, --key's own public key is
trusted for every role. Recording the same state again writes nothing and
says so.`
	if to == lifecycle.Retired {
		long += `

--emergency records an emergency retirement, the exception path, with
--justification, --impact and --remediation (all three required). Its
signer must be in the policy's emergency approver set (lifecycle.emergency);
it counts once the set's threshold signed or approved it (ociwf approve
--emergency by the others). Until then ociwf status shows it pending and
the version keeps its state.`
	}
	cmd := &cobra.Command{
		Use:     verb + " REF --key KEY --reason TEXT [--policy FILE]",
		Short:   short,
		Long:    long,
		Example: example,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if err := r.check(); err != nil {
				return err
			}
			opts := govern.EventOptions{Actor: g.actor, Reason: r.reason, Replacement: r.replacement}
			filled := em.Justification != "" || em.Impact != "" || em.Remediation != ""
			switch {
			case emergency && (strings.TrimSpace(em.Justification) == "" || strings.TrimSpace(em.Impact) == "" || strings.TrimSpace(em.Remediation) == ""):
				return cli.Usagef("--emergency needs --justification, --impact and --remediation, each with a text")
			case emergency:
				e := em
				opts.Emergency = &e
			case filled:
				return cli.Usagef("--justification, --impact and --remediation go with --emergency")
			}
			ctx := cmd.Context()
			rec, signer, done, err := a.recorder(ctx, &g, argv[0])
			if err != nil {
				return err
			}
			defer done()
			res, err := rec.Transition(ctx, argv[0], signer, to, opts)
			if err != nil {
				return err
			}
			what := eventNoun(to)
			if emergency {
				what = "emergency " + what
			}
			a.printRecorded(res, what)
			return nil
		},
	}
	fs := cmd.Flags()
	r.register(fs, participle)
	if to == lifecycle.Retired {
		fs.BoolVar(&emergency, "emergency", false, "an emergency retirement: counts once the emergency approver set's threshold signed or approved it")
		fs.StringVar(&em.Justification, "justification", "", "with --emergency: why the exception process is needed")
		fs.StringVar(&em.Impact, "impact", "", "with --emergency: what the problem affects")
		fs.StringVar(&em.Remediation, "remediation", "", "with --emergency: what is done about it")
	}
	g.register(cmd)
	return cmd
}

// eventNoun names the event entering state s.
func eventNoun(s lifecycle.State) string {
	switch s {
	case lifecycle.Review:
		return "review submission"
	case lifecycle.Published:
		return "publication"
	case lifecycle.Deprecated:
		return "deprecation"
	case lifecycle.Retired:
		return "retirement"
	case lifecycle.Archived:
		return "archival"
	case lifecycle.Quarantined:
		return "quarantine"
	}
	return string(s)
}

// shortID is an event or approval ID cut to 12 hex digits.
func shortID(id string) string {
	if len(id) > len("sha256:")+12 {
		return id[:len("sha256:")+12]
	}
	return id
}

// printRound prints a review round: approvals k of n, by whom, and the
// rejections.
func printRound(w io.Writer, r *lifecycle.Round) {
	approvers := r.Approvers()
	by := ""
	if len(approvers) > 0 {
		by = " by " + strings.Join(approvers, ", ")
	}
	fmt.Fprintf(w, "review %s (submitted by %s): %d of %d approvals%s", shortID(r.Request), strings.Join(r.Author, ", "), len(approvers), r.Needed, by)
	var rejecters []string
	for _, v := range r.Rejections {
		rejecters = append(rejecters, v.Signers...)
	}
	if len(rejecters) > 0 {
		fmt.Fprintf(w, "; rejected by %s", strings.Join(rejecters, ", "))
	}
	fmt.Fprintln(w)
}

// emergencyCount says how far a pending emergency retirement got.
func emergencyCount(p *lifecycle.Pending) string {
	return fmt.Sprintf("%d of %d emergency approvers (%s)", len(p.Agree), p.Needed, strings.Join(p.Agree, ", "))
}
