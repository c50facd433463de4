package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/cmd/internal/progress"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

// trustFlags choose the trust policy: a policy file, or one key.
type trustFlags struct {
	key, policy    string
	signatureOnly  bool
	signedIdentity string
	types          []string
	requireTag     bool
	state          stateFlags
}

func (t *trustFlags) register(cmd *cobra.Command) {
	fs := cmd.Flags()
	t.registerTrust(cmd, "trust this public key (file or KMS URI): a one-key policy requiring the signature, SLSA provenance and the CycloneDX SBOM")
	fs.BoolVar(&t.signatureOnly, "signature-only", false, "with --key: require only the signature, not the provenance and SBOM attestations (for artifacts signed by other tools)")
	fs.StringArrayVar(&t.types, "type", nil, "with --key: a further predicate type that must be attested (repeatable)")
	fs.BoolVar(&t.requireTag, "require-signed-tag", false, "fail a tag reference unless a valid signature records that tag")
}

// registerTrust registers what every command reading a lifecycle chain
// needs: --key or --policy, --signed-identity and the rollback state
// flags; keyHelp describes --key.
func (t *trustFlags) registerTrust(cmd *cobra.Command, keyHelp string) {
	fs := cmd.Flags()
	fs.StringVar(&t.key, "key", "", keyHelp)
	fs.StringVar(&t.policy, "policy", "", "trust policy file (docs/policy.md)")
	fs.StringVar(&t.signedIdentity, "signed-identity", "", "with --key: the repository the signatures name, when verifying a mirror of it")
	t.state.register(fs)
}

// load returns the policy for repository repo; warn receives loud notes.
func (t *trustFlags) load(repo string, warn io.Writer) (*trust.Policy, error) {
	switch {
	case t.key == "" && t.policy == "":
		return nil, cli.Usagef("name what to trust: --key PUBLIC_KEY or --policy FILE")
	case t.key != "" && t.policy != "":
		return nil, cli.Usagef("--key and --policy are mutually exclusive")
	case t.policy != "":
		if t.signatureOnly || t.signedIdentity != "" || len(t.types) > 0 {
			return nil, cli.Usagef("--signature-only, --signed-identity and --type go with --key; a policy file says these itself")
		}
		return trust.Load(t.policy)
	}
	pol := trust.KeyPolicy(t.key, repo, trust.KeyPolicyOptions{SignatureOnly: t.signatureOnly, SignedIdentity: t.signedIdentity, Attestations: t.types, Name: "--key"})
	if err := pol.Validate(); err != nil {
		return nil, cli.Usagef("--type: %w", err)
	}
	if t.signatureOnly {
		fmt.Fprintln(warn, "WARNING: --signature-only: provenance and SBOM attestations are NOT required; the artifact's build and contents are not vouched for.")
	}
	return pol, nil
}

// verifier builds a Verifier for the repository of ref.
// With all, ref names a repository; otherwise it must name a version.
func (a *app) verifier(ctx context.Context, r *remoteFlags, t *trustFlags, ref string, all bool) (*verify.Verifier, error) {
	return a.verifierFor(ctx, r, t, ref, func(tg *target.Source) error {
		switch {
		case all && tg.Reference != "":
			return cli.Usagef("--all takes a repository, without :TAG or @DIGEST: %s", tg.Name)
		case !all && tg.Reference == "":
			return cli.Usagef("name a tag or a digest: %s:TAG or %s@sha256:... (or --all for every version)", ref, ref)
		}
		return nil
	})
}

// verifierFor builds a Verifier for the repository of ref, after check
// accepted the reference; the trust policy comes from t, the lifecycle
// state store from t.state.
func (a *app) verifierFor(ctx context.Context, r *remoteFlags, t *trustFlags, ref string, check func(*target.Source) error) (*verify.Verifier, error) {
	o, err := r.opener(a.Stdin)
	if err != nil {
		return nil, err
	}
	tg, err := o.OpenReadOnly(ctx, ref)
	if err != nil {
		return nil, err
	}
	if err := check(tg); err != nil {
		return nil, err
	}
	pol, err := t.load(tg.Name, a.Stderr)
	if err != nil {
		return nil, err
	}
	store, err := t.state.store()
	if err != nil {
		return nil, err
	}
	return verify.New(pol, o, verify.Options{RequireSignedTag: t.requireTag, StateStore: store, Logger: a.Logger()})
}

func (a *app) verifyCmd() *cobra.Command {
	var r remoteFlags
	var t trustFlags
	var all bool
	var concurrency int
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "verify REF | verify --all REPOSITORY",
		Short:       "Verify a workflow from tag to plan under a trust policy",
		Long: `Verify re-checks a published workflow and its whole signature chain, in order:

  reference        the tag resolves once to a digest; the signed tag must be it
  manifest         fetched by digest, re-hashed, ociwf media types, three layers
  blobs            config and layers re-hashed (digest and size), decoded
  signatures       cosign signatures (tag scheme or referrers) by trusted keys,
                   within their validity window, naming this digest and the
                   repository the policy expects (replays fail); M-of-N signers
  attestations     required predicates by trusted keys about this digest; the
                   provenance lists the DSL layer and every plan dependency,
                   and its builder and source are allowed
  sbom             the SBOM layer is the attested SBOM and lists exactly the
                   plan's dependencies
  reproducibility  the DSL layer recompiles offline to the identical plan
  lifecycle        the lifecycle state is allowed (skipped without a source)

What is trusted comes from --policy FILE (docs/policy.md), or from --key for
one key that must sign the repository being verified and attest SLSA
provenance and a CycloneDX SBOM, as ociwf publish does. Exit code 3 names the
failed check with what it expected and what it found; --output json prints
the report with one entry per check.

The lifecycle state comes from the version's signed event chain
(docs/lifecycle.md): a deprecated version passes with a warning, a retired
or archived one exits 4 naming its state and reason (unless the policy's
lifecycle rules say otherwise). The highest chain seen per version is kept
in a state file ($XDG_STATE_HOME/ociwf/lifecycle.json, else
~/.local/state/ociwf/lifecycle.json; --state-file PATH elsewhere,
--no-state for none): a registry serving fewer or other events than were
seen before (a rollback) fails with exit 3.

With --all, every tagged version of REPOSITORY is verified concurrently and a
summary is printed.`,
		Example: `  ociwf verify --plain-http --key cosign.pub 127.0.0.1:5000/workflows/build:1.0.0
  ociwf verify --policy trust-policy.yaml --output json registry.example.com/workflows/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599
  ociwf verify --all --concurrency 16 --policy trust-policy.yaml registry.example.com/workflows/build`,
		Args: cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			v, err := a.verifier(ctx, &r, &t, argv[0], all)
			if err != nil {
				return err
			}
			if all {
				return a.verifyAll(ctx, v, argv[0], concurrency)
			}
			_, rep, err := v.Verify(ctx, argv[0])
			if rep == nil {
				return err
			}
			a.printReport(rep, err)
			if err != nil {
				return cli.Reported{Err: err}
			}
			return nil
		},
	}
	t.register(cmd)
	cmd.Flags().BoolVar(&all, "all", false, "verify every tagged version of the repository REF")
	cmd.Flags().IntVar(&concurrency, "concurrency", 8, "with --all: versions verified at once")
	r.register(cmd.Flags(), false)
	return cmd
}

func statusMark(s verify.Status) string {
	switch s {
	case verify.Pass:
		return "ok"
	case verify.Fail:
		return "FAIL"
	case verify.Warn:
		return "warn"
	}
	return "-"
}

// printReport prints a report; err is the verification's error, if any.
func (a *app) printReport(rep *verify.Report, err error) {
	if a.Output == "json" {
		out := struct {
			*verify.Report
			Error    string `json:"error,omitempty"`
			ExitCode int    `json:"exitCode"`
		}{rep, "", cli.ExitCode(err)}
		if err != nil {
			out.Error = err.Error()
		}
		a.EmitJSON(out)
		return
	}
	for _, w := range rep.Warnings {
		fmt.Fprintf(a.Stderr, "WARNING: %s\n", w)
	}
	w := a.Stdout
	if rep.Verified {
		fmt.Fprintf(w, "Verified %s@%s (trust policy %q, signers %s)\n", rep.Repository, rep.Digest, rep.Scope, strings.Join(rep.Signers, ", "))
	} else {
		fmt.Fprintf(w, "NOT verified: %s\n", rep.Reference)
	}
	for _, at := range rep.Attestations {
		fmt.Fprintf(w, "  attested %s by %s (%s)\n", at.PredicateType, at.Signer, at.Mode)
	}
	for _, c := range rep.Checks {
		fmt.Fprintf(w, "  %-4s %-16s %s\n", statusMark(c.Status), c.Name, c.Detail)
		if c.Status == verify.Fail {
			fmt.Fprintf(w, "       %-16s %s\n", "expected", c.Expected)
			fmt.Fprintf(w, "       %-16s %s\n", "actual", c.Actual)
		}
	}
	fmt.Fprintf(w, "  %d HTTP requests, %s\n", rep.Requests, rep.Duration.Round(100_000))
}

func (a *app) verifyAll(ctx context.Context, v *verify.Verifier, repo string, concurrency int) error {
	if concurrency < 1 {
		return cli.Usagef("--concurrency must be at least 1")
	}
	bar := a.Progress("verify", "versions")
	defer bar.Done()
	opts := verify.AllOptions{Concurrency: concurrency, Progress: verifyProgress(bar)}
	sum, err := v.VerifyAll(ctx, repo, opts)
	if err != nil {
		return err
	}
	a.Emit(sum, func(w io.Writer) {
		for _, o := range sum.Outcomes {
			switch {
			case o.Verified:
				fmt.Fprintf(w, "  ok   %s %s\n", o.Tag, o.Digest)
			default:
				fmt.Fprintf(w, "  FAIL %s %s\n       %s\n", o.Tag, o.Digest, o.Error)
			}
		}
		fmt.Fprintf(w, "%s: %d versions, %d verified, %d failed, %d errors; %.0f versions/s, %.1f requests per version\n",
			sum.Repository, sum.Versions, sum.Verified, sum.Failed, sum.Errors, sum.VersionsPerSecond, float64(sum.Requests)/float64(max(sum.Versions, 1)))
	})
	switch {
	case sum.Failed > 0:
		return cli.Reported{Err: fmt.Errorf("verify --all %s: %d of %d versions failed verification: %w", sum.Repository, sum.Failed, sum.Versions, errdef.ErrVerification)}
	case sum.Errors > 0:
		return cli.Reported{Err: fmt.Errorf("verify --all %s: %d of %d versions could not be verified", sum.Repository, sum.Errors, sum.Versions)}
	}
	return nil
}

// verifyProgress shows VerifyAll's progress on bar: a version fails when
// it did not verify and was not accepted unverified.
func verifyProgress(bar *progress.Bar) func(done, total int, o verify.Outcome) {
	return func(done, total int, o verify.Outcome) { bar.Update(done, total, o.Tag, o.Error != "") }
}
