package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/plan/graph"
)

// buildFlags are the flags of the commands that compile a workflow.
type buildFlags struct {
	remote  remoteFlags
	offline bool
}

func (b *buildFlags) register(cmd *cobra.Command, layout bool) {
	cmd.Flags().BoolVar(&b.offline, "offline", false, "require every image and uses reference to be pinned by digest; never contact a registry")
	b.remote.register(cmd.Flags(), layout)
}

// compile reads and compiles file.
func (a *app) compile(ctx context.Context, file string, b *buildFlags) (*ociwf.Build, error) {
	src, err := readSource(file)
	if err != nil {
		return nil, err
	}
	created, err := sourceDateEpoch()
	if err != nil {
		return nil, err
	}
	opts := ociwf.CompileOptions{File: file, Created: created, ToolVersion: cli.ToolVersion()}
	if b.offline {
		opts.Resolver = plan.Offline{}
	} else {
		o, err := b.remote.opener(a.Stdin)
		if err != nil {
			return nil, err
		}
		opts.Resolver = ociwf.NewRegistryResolver(o)
	}
	return ociwf.Compile(ctx, src, opts)
}

func readSource(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("read workflow: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, dsl.MaxSourceBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read workflow %s: %w", file, err)
	}
	if len(src) > dsl.MaxSourceBytes {
		size := "over the limit"
		if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
			size = fmt.Sprintf("%d bytes", fi.Size())
		}
		return nil, fmt.Errorf("workflow %s is %s; the limit is %d bytes (4 MiB): %w", file, size, dsl.MaxSourceBytes, errdef.ErrTooLarge)
	}
	return src, nil
}

type compileResult struct {
	File         string            `json:"file"`
	Output       string            `json:"output,omitempty"`
	Digest       string            `json:"digest"`
	Size         int               `json:"size"`
	Steps        int               `json:"steps"`
	Stages       int               `json:"stages"`
	Dependencies []plan.Dependency `json:"dependencies"`
	Plan         *plan.Plan        `json:"plan,omitempty"`
	Graph        string            `json:"graph,omitempty"` // the plan's DAG in the --graph format
	Warnings     []string          `json:"warnings,omitempty"`
}

// usesFlags choose the trust policy the lifecycle states of uses:
// dependencies are checked under.
type usesFlags struct {
	trust           trustFlags
	allowDeprecated bool
}

func (u *usesFlags) register(cmd *cobra.Command) {
	u.trust.registerTrust(cmd, "check the lifecycle state of every uses: dependency under a one-key policy trusting this public key (file or KMS URI)")
	cmd.Flags().BoolVar(&u.allowDeprecated, "allow-deprecated", false, "accept deprecated uses: dependencies, with a warning")
}

// checkUses checks the lifecycle states of b's uses: dependencies when
// the flags name a trust policy; it returns the warnings.
func (a *app) checkUses(ctx context.Context, b *buildFlags, u *usesFlags, build *ociwf.Build) ([]string, error) {
	t := &u.trust
	if t.key == "" && t.policy == "" {
		if u.allowDeprecated {
			return nil, cli.Usagef("--allow-deprecated goes with --key or --policy, which check the uses: dependencies' lifecycle")
		}
		return nil, nil
	}
	if b.offline {
		return nil, cli.Usagef("checking the uses: dependencies' lifecycle reads their registries: drop --offline, or --key and --policy")
	}
	pol, err := t.load("*", a.Stderr)
	if err != nil {
		return nil, err
	}
	store, err := t.state.store()
	if err != nil {
		return nil, err
	}
	o, err := b.remote.opener(a.Stdin)
	if err != nil {
		return nil, err
	}
	v, err := verify.New(pol, o, verify.Options{StateStore: store, Logger: a.Logger()})
	if err != nil {
		return nil, err
	}
	return govern.CheckUses(ctx, v, build.Plan, govern.UsesOptions{AllowDeprecated: u.allowDeprecated})
}

func (a *app) compileCmd() *cobra.Command {
	var b buildFlags
	var out, graphFormat string
	var uses usesFlags
	cmd := &cobra.Command{
		Use:   "compile FILE",
		Short: "Compile a workflow into its digest-pinned execution plan",
		Long: `Compile validates a workflow and writes its execution plan as canonical JSON.
Image and uses references with tags are resolved to digests against their
registries; with --offline every reference must already be pinned.

With --policy FILE or --key PUB, every uses: dependency's lifecycle state is
checked under that trust policy (docs/lifecycle.md): a draft, review,
approved, retired or archived workflow is refused (exit 4, naming it and its
state), and a deprecated one too unless --allow-deprecated, which warns.

--graph mermaid|dot prints the plan's DAG instead of the plan (which -o
still writes): steps grouped by stage, an edge from each step needed,
conditions in the steps' labels with dashed edges into them, uses steps
with their pinned references (docs/dsl.md).`,
		Example: `  ociwf compile --offline wf.yaml
  ociwf compile --plain-http --key cosign.pub -o plan.json release-train.yaml
  ociwf compile --offline --graph mermaid wf.yaml
  ociwf compile --offline --graph dot -o plan.json wf.yaml | dot -Tsvg > plan.svg`,
		Args: cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			if graphFormat != "" && !slices.Contains(graph.Formats(), graph.Format(graphFormat)) {
				return cli.Usagef("--graph must be mermaid or dot, not %q", graphFormat)
			}
			build, err := a.compile(cmd.Context(), argv[0], &b)
			if err != nil {
				return err
			}
			warnings, err := a.checkUses(cmd.Context(), &b, &uses, build)
			for _, w := range warnings {
				fmt.Fprintln(a.Stderr, "WARNING: "+w)
			}
			if err != nil {
				return err
			}
			res := compileResult{
				File: argv[0], Output: out, Digest: digest.FromBytes(build.PlanJSON).String(),
				Size: len(build.PlanJSON), Steps: len(build.Plan.Steps), Stages: len(build.Plan.Stages),
				Dependencies: build.Plan.Dependencies, Warnings: warnings,
			}
			if graphFormat != "" {
				var g strings.Builder
				if err := graph.Render(&g, build.Plan, graph.Format(graphFormat)); err != nil {
					return err
				}
				res.Graph = g.String()
			}
			if out != "" {
				if err := writeFileAtomic(out, build.PlanJSON); err != nil {
					return err
				}
			} else if a.Output == "json" && graphFormat == "" {
				res.Plan = build.Plan
			}
			a.Emit(res, func(w io.Writer) {
				if graphFormat != "" {
					io.WriteString(w, res.Graph)
					return
				}
				if out == "" {
					w.Write(build.PlanJSON)
					fmt.Fprintln(w)
					return
				}
				fmt.Fprintf(w, "%s: %d steps in %d stages, %d dependencies pinned\n%s %s\n",
					argv[0], res.Steps, res.Stages, len(res.Dependencies), res.Digest, out)
			})
			return nil
		},
	}
	cmd.Flags().StringVarP(&out, "plan-output", "o", "", "write the plan to this file instead of stdout")
	cmd.Flags().StringVar(&graphFormat, "graph", "", "print the plan's DAG in this format instead of the plan: mermaid or dot")
	_ = cmd.RegisterFlagCompletionFunc("graph", cobra.FixedCompletions([]string{string(graph.Mermaid), string(graph.DOT)}, cobra.ShellCompDirectiveNoFileComp))
	uses.register(cmd)
	b.register(cmd, false)
	return cmd
}

// writeFileAtomic writes data to path through a temporary file and a rename,
// so readers never see a partial file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".ociwf-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
