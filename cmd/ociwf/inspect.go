package main

import (
	"fmt"
	"io"
	"sort"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
)

func (a *app) inspectCmd() *cobra.Command {
	var remote remoteFlags
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "inspect REF",
		Short:       "Show a workflow's manifest, layers, annotations and tags",
		Example: `  ociwf inspect --plain-http 127.0.0.1:5000/workflows/build:1.0.0
  ociwf inspect --oci-layout --output json ./layout:1.0.0`,
		Args: cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			o, err := remote.opener(a.Stdin)
			if err != nil {
				return err
			}
			src, err := o.OpenReadOnly(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			if src.Reference == "" {
				return cli.Usagef("name a tag or a digest: %s:TAG or %s@sha256:...", argv[0], argv[0])
			}
			in, err := ociwf.Inspect(cmd.Context(), src.Storage, src.Reference)
			if err != nil {
				return err
			}
			a.Emit(struct {
				Reference string `json:"reference"`
				*ociwf.Inspection
			}{src.Pinned(in.Descriptor.Digest), in}, func(w io.Writer) { printInspection(w, src.Pinned(in.Descriptor.Digest), in) })
			return nil
		},
	}
	remote.register(cmd.Flags(), true)
	return cmd
}

func printInspection(w io.Writer, ref string, in *ociwf.Inspection) {
	fmt.Fprintf(w, "Reference:     %s\n", ref)
	fmt.Fprintf(w, "Workflow:      %s %s\n", in.Config.Name, in.Config.Version)
	fmt.Fprintf(w, "Media type:    %s\n", in.Descriptor.MediaType)
	fmt.Fprintf(w, "Artifact type: %s\n", in.Manifest.ArtifactType)
	fmt.Fprintf(w, "Size:          %d\n", in.Descriptor.Size)
	fmt.Fprintf(w, "Tags:          %s\n", strings.Join(in.Tags, ", "))
	fmt.Fprintf(w, "Config:        %s %s (%d bytes)\n", in.Manifest.Config.Digest, in.Manifest.Config.MediaType, in.Manifest.Config.Size)
	fmt.Fprintln(w, "Layers:")
	for _, l := range in.Manifest.Layers {
		fmt.Fprintf(w, "  %-14s %s %s (%d bytes)\n", l.Annotations[ocispec.AnnotationTitle], l.Digest, l.MediaType, l.Size)
	}
	fmt.Fprintln(w, "Annotations:")
	keys := make([]string, 0, len(in.Manifest.Annotations))
	for k := range in.Manifest.Annotations {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %s: %s\n", k, in.Manifest.Annotations[k])
	}
}
