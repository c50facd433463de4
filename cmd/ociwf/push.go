package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
)

type pushResult struct {
	Reference string `json:"reference"`
	Digest    string `json:"digest"`
	Tag       string `json:"tag,omitempty"`
	MediaType string `json:"mediaType"`
	Size      int64  `json:"size"`
}

func (a *app) pushCmd() *cobra.Command {
	var b buildFlags
	var source, revision string
	var annotations []string
	var draft bool
	var rulesFile string
	cmd := &cobra.Command{
		Use:   "push FILE REF",
		Short: "Compile a workflow and publish it write-once",
		Long: `Push compiles FILE, packs source, plan and SBOM into one OCI artifact and
publishes it to REF (registry/repository[:tag], or with --oci-layout
DIR[:tag]). Blobs and the manifest go by digest; the tag is applied last and
never moved: if it already names another digest, push exits 4 and leaves it
alone. Without a tag, the workflow's metadata.version is the tag. The last
line printed is the pinned reference REPOSITORY@sha256:...

--draft pushes a draft (docs/lifecycle.md): the tag is a mutable draft tag
that moves to the new content. Only tags the immutability rules leave
mutable may be draft tags (the default rules protect semver tags; --rules
FILE reads the registry's); a protected tag exits 4.`,
		Example: `  ociwf push --plain-http wf.yaml 127.0.0.1:5000/workflows/build
  ociwf push --plain-http --draft wf.yaml 127.0.0.1:5000/workflows/build:draft
  ociwf push --oci-layout --offline wf.yaml ./layout:1.0.0`,
		Args: cli.Args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			_, dst, err := a.destination(ctx, &b.remote, argv[1], "push")
			if err != nil {
				return err
			}
			build, err := a.compile(ctx, argv[0], &b)
			if err != nil {
				return err
			}
			tag := versionTag(dst, build)
			if draft {
				var rules *immutability.Rules
				if rulesFile != "" {
					if rules, err = immutability.Load(rulesFile); err != nil {
						return err
					}
				}
				if err := ociwf.DraftTag(rules, repositoryPath(dst.Name), tag); err != nil {
					return err
				}
			} else if rulesFile != "" {
				return cli.Usagef("--rules applies to --draft pushes")
			}
			desc, err := ociwf.Push(ctx, dst.Storage, build, tag, ociwf.PushOptions{
				PackOptions: ociwf.PackOptions{Source: source, Revision: revision, Annotations: ann},
				Logger:      a.Logger(),
				Draft:       draft,
			})
			if err != nil {
				return err
			}
			res := pushResult{Reference: dst.Pinned(desc.Digest), Digest: desc.Digest.String(), Tag: tag, MediaType: desc.MediaType, Size: desc.Size}
			a.Emit(res, func(w io.Writer) {
				fmt.Fprintf(w, "Pushed %s:%s\n%s\n", dst.Name, tag, res.Reference)
			})
			return nil
		},
	}
	cmd.Flags().StringVar(&source, "source", "", "source repository URL (org.opencontainers.image.source)")
	cmd.Flags().StringVar(&revision, "revision", "", "source revision, e.g. a git commit (org.opencontainers.image.revision)")
	cmd.Flags().StringArrayVarP(&annotations, "annotation", "a", nil, "extra manifest annotation KEY=VALUE (repeatable)")
	cmd.Flags().BoolVar(&draft, "draft", false, "push a draft: move the tag if it names other content (mutable tags only)")
	cmd.Flags().StringVar(&rulesFile, "rules", "", "immutability rules file deciding which tags are mutable, for --draft (default: semver tags are immutable)")
	b.register(cmd, true)
	return cmd
}

// destination opens REF to publish to: a tag or a bare repository, never a
// digest (verb names the command in the error).
func (a *app) destination(ctx context.Context, r *remoteFlags, ref, verb string) (*target.Opener, *target.Target, error) {
	o, err := r.opener(a.Stdin)
	if err != nil {
		return nil, nil, err
	}
	dst, err := o.Open(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	if dst.IsDigest() {
		return nil, nil, cli.Usagef("%s to a tag or a bare repository, not a digest (%s)", verb, ref)
	}
	return o, dst, nil
}

// repositoryPath is a repository name without its registry host, as
// immutability rules match it.
func repositoryPath(name string) string {
	if _, rest, ok := strings.Cut(name, "/"); ok {
		return rest
	}
	return name
}

// versionTag is the tag REF named, else the workflow's metadata.version.
func versionTag(dst *target.Target, b *ociwf.Build) string {
	if dst.Reference != "" {
		return dst.Reference
	}
	return b.Plan.Workflow.Version
}

func parseAnnotations(kvs []string) (map[string]string, error) {
	out := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, cli.Usagef("annotation %q: want KEY=VALUE", kv)
		}
		out[k] = v
	}
	return out, nil
}
