package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/ociwf"
)

func (a *app) publishCmd() *cobra.Command {
	var b buildFlags
	var s signerFlags
	var st storage
	var annotations []string
	var prov provenance.Options
	cmd := &cobra.Command{
		Use:   "publish FILE REF",
		Short: "Compile, push, sign and attest a workflow, then tag it write-once",
		Long: `Publish runs the publication ceremony in one command: compile FILE, push the
artifact by digest, sign it, attest its SLSA v1 provenance and its CycloneDX
SBOM, and apply the write-once tag last. The last line printed is the pinned
reference REPOSITORY@sha256:....

A failure at any step leaves no tag naming a half-published artifact; rerun
the same command to finish. Rerunning a completed publish writes nothing
new. If the tag already names other content, publish exits 4 before
uploading anything.

Provenance records the builder (--builder-id, else $OCIWF_BUILDER_ID, else
the GitHub Actions or GitLab CI run, else a local builder) and the source
(--source-uri, --source-ref, --source-revision, else the CI's variables).`,
		Example: `  COSIGN_PASSWORD=... ociwf publish --plain-http --key cosign.key wf.yaml 127.0.0.1:5000/workflows/build:1.0.0`,
		Args:    args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			ann, err := parseAnnotations(annotations)
			if err != nil {
				return err
			}
			if b.remote.opts.OCILayout {
				return usagef("publish needs a registry: signatures and attestations are stored in registry repositories")
			}
			ctx := cmd.Context()
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
			prov.ToolVersion = toolVersion()
			ropts, err := st.options(a.logger())
			if err != nil {
				return err
			}
			reg := accessory.NewRegistry(o, ropts)
			res, err := publish.Publish(ctx, dst, build, reg, signer, publish.Options{
				Tag:         tag,
				Pack:        ociwf.PackOptions{Source: prov.SourceURL(), Revision: prov.SourceRevision},
				Provenance:  prov,
				Annotations: ann,
				Logger:      a.logger(),
			})
			if err != nil {
				return err
			}
			a.emit(res, func(w io.Writer) {
				for _, st := range res.Steps {
					note := ""
					if st.Existing {
						note = " (already there)"
					}
					fmt.Fprintf(w, "%-18s %8s%s\n", st.Name, st.Duration.Round(100_000), note)
				}
				fmt.Fprintf(w, "Published %s:%s\n%s\n", dst.Name, tag, res.Reference)
			})
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&prov.BuilderID, "builder-id", "", "provenance builder.id (default $OCIWF_BUILDER_ID, the CI run, or a local builder)")
	f.StringVar(&prov.SourceURI, "source-uri", "", "source repository, e.g. git+https://github.com/acme/workflows")
	f.StringVar(&prov.SourceRef, "source-ref", "", "git ref built, e.g. refs/heads/main")
	f.StringVar(&prov.SourceRevision, "source-revision", "", "git commit built")
	f.StringVar(&prov.WorkflowPath, "workflow-path", "", "path of FILE in the source repository (default FILE)")
	f.StringArrayVarP(&annotations, "annotation", "a", nil, "extra signed annotation KEY=VALUE (repeatable)")
	storageFlag(f, &st)
	s.register(f)
	b.register(cmd, false)
	return cmd
}
