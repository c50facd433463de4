package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ociwf.dev/ociwf"
)

func (a *app) pullCmd() *cobra.Command {
	var remote remoteFlags
	var dir string
	cmd := &cobra.Command{
		Use:   "pull REF",
		Short: "Fetch a workflow by digest and write its source, plan and SBOM",
		Long: `Pull resolves REF once, fetches the manifest and every blob by digest,
re-checks each digest and size while streaming, and writes the three layers
under their titles into the output directory. Nothing is written unless all
of them verify; a mismatch exits 3.`,
		Args: args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			o, err := remote.opener(a.stdin)
			if err != nil {
				return err
			}
			src, err := o.Open(cmd.Context(), argv[0])
			if err != nil {
				return err
			}
			ref := src.Reference
			if ref == "" {
				return usagef("name a tag or a digest: %s:TAG or %s@sha256:...", argv[0], argv[0])
			}
			pulled, err := ociwf.Pull(cmd.Context(), src.Store, ref, dir)
			if err != nil {
				return err
			}
			a.emit(struct {
				Reference string `json:"reference"`
				*ociwf.Pulled
			}{src.Pinned(pulled.Descriptor.Digest), pulled}, func(w io.Writer) {
				for _, f := range pulled.Files {
					fmt.Fprintf(w, "Wrote %s\n", f)
				}
				fmt.Fprintln(w, pulled.Descriptor.Digest)
			})
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output-dir", "o", ".", "directory to write the files into")
	remote.register(cmd.Flags(), true)
	return cmd
}
