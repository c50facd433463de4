package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

func (a *app) publishCmd() *cobra.Command {
	var b buildFlags
	var s signerFlags
	var st storage
	var annotations []string
	var prov provenance.Options
	var tag string
	var lf publishLifecycleFlags
	var concurrency int
	cmd := &cobra.Command{
		Use:   "publish FILE REF | publish REPOSITORY@DIGEST [--tag TAG] | publish FILE|DIR... REPOSITORY-PREFIX",
		Short: "Sign, attest and tag a workflow write-once: compiled from FILE, or already pushed",
		Long: `Publish runs the publication ceremony in one command: compile FILE, push the
artifact by digest, sign it, attest its SLSA v1 provenance and its CycloneDX
SBOM, and apply the write-once tag last. REF is REPOSITORY[:TAG]; without a
tag, the workflow's metadata.version is the tag. The last line printed is
the pinned reference REPOSITORY@sha256:....

Given REPOSITORY@sha256:... alone, publish publishes that version, already
pushed (a draft, reviewed and approved by digest), exactly as it is stored:
nothing is compiled or repacked and the digest does not change. The
manifest, config and layers are read back and re-hashed, and the stored plan
must be what the stored source recompiles to, or publish exits 3 with
nothing signed. --tag names the version tag; without it the version is
published by digest only.

A failure at any step leaves no tag naming a half-published artifact; rerun
the same command to finish. Rerunning a completed publish writes nothing
new. If the tag already names other content, publish exits 4 before
uploading or signing anything.

Provenance records the builder (--builder-id, else $OCIWF_BUILDER_ID, else
the GitHub Actions or GitLab CI run, else a local builder) and the source
(--source-uri, --source-ref, --source-revision, else the CI's variables).

Publication is a lifecycle transition (docs/lifecycle.md): under the trust
policy (--policy, else a one-key policy trusting --key's public key for
every repository and role), publish refuses before signing anything (exit
4) a version whose verified lifecycle does not allow it (a review without
the approvals the policy requires, a retired version, a signer not allowed
to publish) and a uses: dependency that is a draft, retired or archived, or
deprecated without --allow-deprecated. It records the publication event
with the attestations. --supersedes REF deprecates REF once the new version
is tagged, with the new version as its replacement.

Bulk publish: given several FILEs, or a DIR (its *.yaml and *.yml files, not
its subdirectories), then a REPOSITORY-PREFIX, publish publishes each
workflow to REPOSITORY-PREFIX/<metadata.name>:<metadata.version>. Every
file is compiled first: a malformed one fails the command before anything
is uploaded. The key is decrypted once; up to --concurrency workflows are
pushed, signed and attested at once, each under the same lifecycle gate as
a single publish, and each version's write-once tag is applied last for
that version, so a workflow that fails leaves no other half-published.
Output is one line per workflow (FILE, then its pinned reference or its
error); --output json lists them with their results or errors. The exit
code is 0 when all were published, else the worst of the failures: 4
(immutability, lifecycle) before 3 (verification) before 2 (usage) before
1. Rerun the same command to finish: completed workflows write nothing new.
--supersedes and --workflow-path are for one FILE only.`,
		Example: `  COSIGN_PASSWORD=... ociwf publish --plain-http --key cosign.key wf.yaml 127.0.0.1:5000/workflows/build:1.0.0
  COSIGN_PASSWORD=... ociwf publish --plain-http --key cosign.key 127.0.0.1:5000/workflows/build@sha256:20189eff08aa841a6546dbb69820f74d6be31faacf4a1cf7885e588497938599 --tag 1.0.0
  COSIGN_PASSWORD=... ociwf publish --plain-http --key ci.key --policy policy.yaml wf.yaml 127.0.0.1:5000/workflows/build:1.0.1 --supersedes 127.0.0.1:5000/workflows/build:1.0.0
  COSIGN_PASSWORD=... ociwf publish --plain-http --key cosign.key --concurrency 4 workflows/ 127.0.0.1:5000/workflows`,
		Args: cli.Args(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			if b.remote.opts.OCILayout {
				return cli.Usagef("publish needs a registry: signatures and attestations are stored in registry repositories")
			}
			ctx := cmd.Context()
			if bulkArgs(argv) {
				if tag != "" {
					return cli.Usagef("--tag is for publishing a version already pushed (REPOSITORY@sha256:...); a bulk publish tags each workflow with its metadata.version")
				}
				return a.publishBulk(ctx, &b, &s, st, &lf, argv[:len(argv)-1], argv[len(argv)-1], prov, ann, concurrency)
			}
			if len(argv) == 1 {
				return a.publishStored(ctx, &b, &s, st, &lf, argv[0], tag, prov, ann)
			}
			if tag != "" {
				return cli.Usagef("--tag is for publishing a version already pushed (REPOSITORY@sha256:...); with FILE, name the tag in REF (REPOSITORY:TAG)")
			}
			o, dst, err := a.destination(ctx, &b.remote, argv[1], "publish")
			if err != nil {
				return err
			}
			if err := s.check(); err != nil {
				return err
			}
			// Decrypting a key file (scrypt) is the slowest part of a
			// publish: start now, and let compile and push run meanwhile.
			signer := publish.Load(ctx, s.loader(a))
			build, err := a.compile(ctx, argv[0], &b)
			if err != nil {
				return err
			}
			tag := versionTag(dst, build)
			prov = provenance.FromEnv(os.Getenv, prov)
			if prov.WorkflowPath == "" {
				prov.WorkflowPath = argv[0]
			}
			prov.ToolVersion = cli.ToolVersion()
			reg, lc, cleanup, err := a.publishRegistry(o, st, &lf, &s)
			if err != nil {
				return err
			}
			defer cleanup()
			res, err := publish.Publish(ctx, dst, build, reg, signer, publish.Options{
				Tag:         tag,
				Pack:        ociwf.PackOptions{Source: prov.SourceURL(), Revision: prov.SourceRevision},
				Provenance:  prov,
				Annotations: ann,
				Logger:      a.Logger(),
				Lifecycle:   lc,
			})
			if err != nil {
				return err
			}
			a.published(dst, res)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prov.BuilderID, "builder-id", "", "provenance builder.id (default $OCIWF_BUILDER_ID, the CI run, or a local builder)")
	f.StringVar(&prov.SourceURI, "source-uri", "", "source repository, e.g. git+https://github.com/acme/workflows")
	f.StringVar(&prov.SourceRef, "source-ref", "", "git ref built, e.g. refs/heads/main")
	f.StringVar(&prov.SourceRevision, "source-revision", "", "git commit built")
	f.StringVar(&prov.WorkflowPath, "workflow-path", "", "path of FILE in the source repository (default FILE)")
	f.StringVar(&tag, "tag", "", "with REPOSITORY@DIGEST: the write-once version tag to apply (default: none, publish by digest only)")
	f.IntVar(&concurrency, "concurrency", publish.DefaultConcurrency, "bulk publish: workflows published at once")
	f.StringArrayVarP(&annotations, "annotation", "a", nil, "extra signed annotation KEY=VALUE (repeatable)")
	lf.register(f)
	storageFlag(f, &st)
	s.register(f)
	b.register(cmd, false)
	return cmd
}

// publishLifecycleFlags are publish's lifecycle flags.
type publishLifecycleFlags struct {
	policy, actor, supersedes string
	allowDeprecated           bool
	state                     stateFlags
}

func (l *publishLifecycleFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&l.policy, "policy", "", "trust policy the version's lifecycle and its uses: dependencies are checked under (docs/lifecycle.md); default: a one-key policy trusting --key's public key")
	fs.StringVar(&l.actor, "actor", "", "who publishes, as you name yourself, recorded in the publication event")
	fs.StringVar(&l.supersedes, "supersedes", "", "a version this one replaces: deprecated once this one is tagged, with this one as its replacement")
	fs.BoolVar(&l.allowDeprecated, "allow-deprecated", false, "accept deprecated uses: dependencies, with a warning")
	l.state.register(fs)
}

// publishRegistry is what every publish needs beside the signer: the
// signature store the storage flags describe, and the ceremony's
// lifecycle part the lifecycle flags describe; cleanup removes what a
// one-key policy needed.
func (a *app) publishRegistry(o *target.Opener, st storage, l *publishLifecycleFlags, s *signerFlags) (*accessory.Registry, *publish.Lifecycle, func(), error) {
	ropts, err := st.options(a.Logger())
	if err != nil {
		return nil, nil, nil, err
	}
	reg := accessory.NewRegistry(o, ropts)
	lc, cleanup, err := a.publishLifecycle(o, reg, l, s)
	return reg, lc, cleanup, err
}

// publishLifecycle is the ceremony's lifecycle part the flags describe.
func (a *app) publishLifecycle(o *target.Opener, reg *accessory.Registry, l *publishLifecycleFlags, s *signerFlags) (*publish.Lifecycle, func(), error) {
	store, err := l.state.store()
	if err != nil {
		return nil, nil, err
	}
	var pol *trust.Policy
	if l.policy != "" {
		if pol, err = trust.Load(l.policy); err != nil {
			return nil, nil, err
		}
	} else if s.opts.Keyless {
		return nil, nil, cli.Usagef("--keyless needs --policy FILE naming the keyless identity: without a policy, the signing key's public key is what is trusted")
	}
	// A bulk publish calls Recorder from several ceremonies at once.
	var mu sync.Mutex
	var removes []func()
	cleanup := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, remove := range removes {
			if remove != nil {
				remove()
			}
		}
	}
	return &publish.Lifecycle{
		Actor: l.actor, AllowDeprecated: l.allowDeprecated, Supersedes: l.supersedes,
		Recorder: func(_ context.Context, signer *accessory.Signer) (*govern.Recorder, error) {
			mu.Lock()
			defer mu.Unlock()
			p := pol
			if p == nil {
				var remove func()
				var err error
				if p, remove, err = signerPolicy(signer, s.opts.Key, "*"); err != nil {
					return nil, err
				}
				removes = append(removes, remove)
			}
			v, err := verify.New(p, o, verify.Options{StateStore: store, Logger: a.Logger()})
			if err != nil {
				return nil, err
			}
			return govern.New(v, reg, govern.Options{Logger: a.Logger()})
		},
	}, cleanup, nil
}

// publishStored publishes the version ref (REPOSITORY@DIGEST) names, as
// it is stored, under tag ("" for by digest only).
func (a *app) publishStored(ctx context.Context, b *buildFlags, s *signerFlags, st storage, lf *publishLifecycleFlags, ref, tag string, prov provenance.Options, ann map[string]string) error {
	o, err := b.remote.opener(a.Stdin)
	if err != nil {
		return err
	}
	dst, err := o.Open(ctx, ref)
	if err != nil {
		return err
	}
	if !dst.IsDigest() {
		return cli.Usagef("publish takes FILE REF, or a version already pushed named by digest alone (REPOSITORY@sha256:... [--tag TAG]); %s names no digest", ref)
	}
	if err := s.check(); err != nil {
		return err
	}
	// The key loads while the stored version is read back and checked.
	signer := publish.Load(ctx, s.loader(a))
	prov = provenance.FromEnv(os.Getenv, prov)
	prov.ToolVersion = cli.ToolVersion()
	reg, lc, cleanup, err := a.publishRegistry(o, st, lf, s)
	if err != nil {
		return err
	}
	defer cleanup()
	res, err := publish.PublishDigest(ctx, dst, digest.Digest(dst.Reference), reg, signer, publish.Options{
		Tag:         tag,
		Provenance:  prov,
		Annotations: ann,
		Logger:      a.Logger(),
		Lifecycle:   lc,
	})
	if err != nil {
		return err
	}
	a.published(dst, res)
	return nil
}

// published prints a completed publication: its steps, then the pinned
// reference last.
func (a *app) published(dst *target.Target, res *publish.Result) {
	a.Emit(res, func(w io.Writer) {
		for _, st := range res.Steps {
			note := ""
			if st.Existing {
				note = " (already there)"
			}
			fmt.Fprintf(w, "%-18s %8s%s\n", st.Name, st.Duration.Round(100_000), note)
		}
		if res.Tag == "" {
			fmt.Fprintf(w, "Published %s by digest only (no tag)\n%s\n", dst.Name, res.Reference)
			return
		}
		fmt.Fprintf(w, "Published %s:%s\n%s\n", dst.Name, res.Tag, res.Reference)
	})
}
