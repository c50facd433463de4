package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
)

func (a *app) pullCmd() *cobra.Command {
	var remote remoteFlags
	var t trustFlags
	var dir string
	var skipVerify, force bool
	cmd := &cobra.Command{
		Annotations: map[string]string{cli.ReadOnly: "true"},
		Use:         "pull REF (--key PUB | --policy FILE)",
		Short:       "Verify a workflow, then write its source, plan and SBOM",
		Long: `Pull runs every check of ociwf verify on REF under the trust policy
(--policy FILE, or --key PUB for one key) and only when all pass writes the
three layers under their titles into the output directory. Nothing is
written unless verification passed; a failure exits 3 and names the check.
The three files appear together or not at all. A retired or
archived version exits 4, naming its state and reason, and writes nothing;
the lifecycle state file is kept as ociwf verify keeps it (--state-file,
--no-state). Existing files of the same
names are left alone (pull exits 1) unless --force replaces them.

--insecure-skip-verify pulls without any signature, attestation or policy
check: only digests and sizes are re-checked. It prints a warning every time.
Use it for artifacts nobody signed, never for what a runtime executes.`,
		Example: `  ociwf pull --plain-http --key cosign.pub -o ./wf 127.0.0.1:5000/workflows/build:1.0.0`,
		Args:    cli.Args(cobra.ExactArgs(1)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ctx := cmd.Context()
			if skipVerify {
				if t.key != "" || t.policy != "" {
					return cli.Usagef("--insecure-skip-verify contradicts --key and --policy")
				}
				fmt.Fprintln(a.Stderr, "WARNING: --insecure-skip-verify: signatures, attestations and the trust policy are NOT checked; only digests are.")
				return a.pullUnverified(cmd, &remote, argv[0], dir, ociwf.WriteOptions{Force: force})
			}
			if remote.opts.OCILayout {
				return cli.Usagef("pull --oci-layout reads no signatures (they live in registries): add --insecure-skip-verify to pull from an OCI layout")
			}
			if t.key == "" && t.policy == "" {
				return cli.Usagef("pull verifies first: name what to trust with --key PUBLIC_KEY or --policy FILE (or, for unsigned artifacts, --insecure-skip-verify)")
			}
			v, err := a.verifier(ctx, &remote, &t, argv[0], false)
			if err != nil {
				return err
			}
			wf, rep, err := v.Verify(ctx, argv[0])
			if err != nil {
				if rep != nil && rep.Failed() != nil {
					a.printReport(rep, err)
					return cli.Reported{Err: err}
				}
				return err
			}
			files, err := ociwf.WriteLayers(dir, wf.Manifest, wf.Source, wf.PlanJSON, wf.SBOM, ociwf.WriteOptions{Force: force})
			if err != nil {
				return err
			}
			a.Emit(struct {
				Reference string       `json:"reference"`
				Verified  bool         `json:"verified"`
				Config    ociwf.Config `json:"config"`
				Files     []string     `json:"files"`
				Report    any          `json:"report"`
			}{rep.Repository + "@" + rep.Digest.String(), true, wf.Config, files, rep}, func(w io.Writer) {
				for _, w2 := range rep.Warnings {
					fmt.Fprintf(a.Stderr, "WARNING: %s\n", w2)
				}
				fmt.Fprintf(w, "Verified %s@%s (trust policy %q)\n", rep.Repository, rep.Digest, rep.Scope)
				for _, f := range files {
					fmt.Fprintf(w, "Wrote %s\n", f)
				}
			})
			return nil
		},
	}
	cmd.Flags().StringVarP(&dir, "output-dir", "o", ".", "directory to write the files into")
	cmd.Flags().BoolVar(&force, "force", false, "replace existing workflow.yaml, plan.json and sbom.cdx.json in the output directory")
	cmd.Flags().BoolVar(&skipVerify, "insecure-skip-verify", false, "pull without verifying signatures, attestations or policy (digests are still checked)")
	t.register(cmd)
	remote.register(cmd.Flags(), true)
	return cmd
}

// pullUnverified pulls with digest checks only.
func (a *app) pullUnverified(cmd *cobra.Command, remote *remoteFlags, ref, dir string, wo ociwf.WriteOptions) error {
	o, err := remote.opener(a.Stdin)
	if err != nil {
		return err
	}
	src, err := o.OpenReadOnly(cmd.Context(), ref)
	if err != nil {
		return err
	}
	if src.Reference == "" {
		return cli.Usagef("name a tag or a digest: %s:TAG or %s@sha256:...", ref, ref)
	}
	pulled, err := ociwf.Pull(cmd.Context(), src.Storage, src.Reference, dir, wo)
	if err != nil {
		return err
	}
	a.Emit(struct {
		Reference string `json:"reference"`
		Verified  bool   `json:"verified"`
		*ociwf.Pulled
	}{src.Pinned(pulled.Descriptor.Digest), false, pulled}, func(w io.Writer) {
		for _, f := range pulled.Files {
			fmt.Fprintf(w, "Wrote %s\n", f)
		}
		fmt.Fprintln(w, pulled.Descriptor.Digest)
	})
	return nil
}
