package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"

	"github.com/opencontainers/go-digest"
	"github.com/spf13/cobra"

	"ociwf.dev/attest/mirror"
	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// copyOutput is what ociwf copy prints with --output json.
type copyOutput struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Versions are the versions copied (one without --all).
	Versions []*mirror.Result `json:"versions"`
	// Failed names the versions that did not copy, with why (--all).
	Failed map[string]string `json:"failed,omitempty"`
	// Manifests, Blobs and Bytes are what was written, Skipped what the
	// destination already held, over every version.
	Manifests int   `json:"manifests"`
	Blobs     int   `json:"blobs"`
	Bytes     int64 `json:"bytes"`
	Skipped   int   `json:"skipped"`
	// Accessories, LifecycleEvents and Approvals add up what the
	// destination holds for the versions copied.
	Accessories     map[string]int `json:"accessories"`
	LifecycleEvents int            `json:"lifecycleEvents"`
	Approvals       int            `json:"approvals"`
	// Verified says whether the destination verified under the trust
	// policy; Verification holds the report (one version) or summary
	// (--all). A layout or archive is checked by re-hashing only.
	Verified     bool   `json:"verified"`
	Verification any    `json:"verification,omitempty"`
	Error        string `json:"error,omitempty"`
	ExitCode     int    `json:"exitCode"`
}

func (a *app) copyCmd() *cobra.Command {
	var r remoteFlags
	var t trustFlags
	var all, noVerify bool
	var concurrency int
	cmd := &cobra.Command{
		Use:   "copy SRC DST | copy --all SRC DST",
		Short: "Copy workflow versions with their signatures, attestations and lifecycle events",
		Long: `Copy copies a workflow version with everything attached to it to another
registry, to an OCI image layout directory or to a tar archive of one (to
carry across an air gap), and back: the manifest and blobs, cosign's
sha256-<hex>.sig/.att/.sbom tags, and the OCI 1.1 referrers (signatures,
attestations, sigstore bundles, lifecycle events and approvals), so the copy
verifies as the original does and its lifecycle state is the same.

SRC and DST are
  registry/repository[:TAG|@DIGEST]   a registry repository
  oci:DIR[:TAG|@DIGEST]               an OCI image layout directory
  tar:FILE[:TAG|@DIGEST]              a tar archive of an OCI image layout
SRC names a version by tag or digest; the version keeps its tag at DST
unless DST names another one. With --all, SRC and DST name a repository,
layout or archive without a tag, and every version (each tag that is not an
accessory tag) is copied, --concurrency at once.

A copy is idempotent and resumable: what DST holds is skipped, so running it
again finishes an interrupted copy and writes nothing after a complete one.
Nothing is removed at DST: when one of its cosign tags already holds other
entries (the ociwf registry's append-only accessories, a mirror signed
again), the source's entries are added after them. The version tag is
written last and write-once: a tag naming another digest at DST is refused
with exit 4 before anything is written. A tar archive is rebuilt next to
its file and replaced at the end; versions already in it are kept.

After copying, every manifest and blob written is read back from DST and
re-hashed, and every accessory of SRC must be at DST (exit 3 names what is
missing). A registry DST is then verified as ociwf verify does, under --key
or --policy; --signed-identity names the repository the signatures name
when DST is a mirror under another name. --no-verify skips that (not the
re-hashing).`,
		Example: `  ociwf copy --plain-http --key cosign.pub --signed-identity 127.0.0.1:5000/team/build \
      127.0.0.1:5000/team/build:1.4.0 127.0.0.1:5001/mirror/build
  ociwf copy --plain-http 127.0.0.1:5000/team/build:1.4.0 tar:build-1.4.0.tar
  ociwf copy --plain-http --policy trust-policy.yaml tar:build-1.4.0.tar:1.4.0 127.0.0.1:5000/team/build
  ociwf copy --all --concurrency 8 --plain-http --key cosign.pub --signed-identity 127.0.0.1:5000/team/build \
      127.0.0.1:5000/team/build oci:./backup`,
		Args: cli.Args(cobra.ExactArgs(2)),
		RunE: func(cmd *cobra.Command, argv []string) error {
			return a.copy(cmd.Context(), &r, &t, argv[0], argv[1], all, noVerify, concurrency)
		},
	}
	t.registerTrust(cmd, "verify a registry destination with this public key (file or KMS URI), as ociwf verify --key does")
	cmd.Flags().BoolVar(&t.signatureOnly, "signature-only", false, "with --key: require only the signature at the destination, not the provenance and SBOM attestations")
	cmd.Flags().BoolVar(&all, "all", false, "copy every version of the repository, layout or archive SRC")
	cmd.Flags().IntVar(&concurrency, "concurrency", 4, "with --all: versions copied at once")
	cmd.Flags().BoolVar(&noVerify, "no-verify", false, "do not verify a registry destination under a trust policy (it is still re-hashed)")
	r.register(cmd.Flags(), false)
	return cmd
}

func (a *app) copy(ctx context.Context, r *remoteFlags, t *trustFlags, srcRef, dstRef string, all, noVerify bool, concurrency int) error {
	if concurrency < 1 {
		return cli.Usagef("--concurrency must be at least 1")
	}
	if _, err := r.opener(a.Stdin); err != nil {
		return err
	}
	mo, err := mirror.NewOpener(r.opts)
	if err != nil {
		return err
	}
	src, err := mo.OpenSource(ctx, srcRef)
	if err != nil {
		return err
	}
	dst, err := mo.OpenDestination(ctx, dstRef)
	if err != nil {
		return err
	}
	defer dst.Close()
	switch {
	case all && (src.Reference != "" || dst.Reference != ""):
		return cli.Usagef("--all copies every version: name SRC and DST without :TAG or @DIGEST")
	case !all && src.Reference == "":
		return cli.Usagef("name the version to copy: %s:TAG or %s@sha256:... (or --all for every version)", srcRef, srcRef)
	}
	verifying := dst.Kind == mirror.Registry && !noVerify
	if verifying && t.key == "" && t.policy == "" {
		return cli.Usagef("a registry destination is verified after the copy: name what to trust with --key or --policy (or --no-verify)")
	}
	if !verifying && (t.key != "" || t.policy != "") {
		fmt.Fprintf(a.Stderr, "WARNING: --key/--policy are not used: %s is re-hashed, not verified under a trust policy\n", dstRef)
	}
	var v *verify.Verifier
	if verifying {
		// The trust flags are checked, and the policy loaded, before
		// anything is written.
		if v, err = a.verifierFor(ctx, r, t, dst.Name, func(*target.Source) error { return nil }); err != nil {
			return err
		}
	}
	out := &copyOutput{Source: srcRef, Destination: dstRef, Accessories: map[string]int{}}
	opts := mirror.Options{Logger: a.Logger()}
	var digests []digest.Digest
	var copyErr error
	if all {
		bar := a.Progress("copy", "versions")
		progress := func(done, total int, tag string, err error) { bar.Update(done, total, tag, err != nil) }
		sum, err := mirror.CopyAll(ctx, src.Storage, dst.Storage, mirror.AllOptions{Concurrency: concurrency, Copy: opts, Progress: progress})
		bar.Done()
		if sum != nil {
			out.Versions, out.Failed = sum.Versions, sum.Failed
		}
		copyErr = err
	} else {
		opts.Tag = copyTag(src.Ref, dst.Ref)
		if dst.IsDigest() {
			desc, err := src.Storage.Resolve(ctx, src.Reference)
			if err != nil {
				return fmt.Errorf("resolve %s: %w", srcRef, err)
			}
			if desc.Digest.String() != dst.Reference {
				return cli.Usagef("DST names %s, and SRC is %s: name DST without a digest, or with a tag", dst.Reference, desc.Digest)
			}
		}
		res, err := mirror.Copy(ctx, src.Storage, src.Reference, dst.Storage, opts)
		if res != nil {
			out.Versions = []*mirror.Result{res}
		}
		if err != nil {
			err = fmt.Errorf("copy %s to %s: %w", srcRef, dstRef, err)
		}
		copyErr = err
	}
	if copyErr == nil {
		copyErr = a.finishCopy(ctx, dst, out)
	}
	for _, v := range out.Versions {
		if v != nil && v.Accessories != nil {
			digests = append(digests, v.Digest)
		}
	}
	if copyErr == nil && verifying {
		bar := a.Progress("verify", "versions")
		copyErr = verifyCopy(ctx, v, dst, digests, all, verifyProgress(bar), out)
		bar.Done()
	}
	return a.printCopy(out, copyErr)
}

// copyTag is the tag the version gets at DST: DST's tag, else SRC's.
func copyTag(src, dst target.Ref) string {
	switch {
	case dst.Reference != "" && !dst.IsDigest():
		return dst.Reference
	case src.Reference != "" && !src.IsDigest():
		return src.Reference
	}
	return ""
}

// finishCopy commits a tar destination and checks every version again in
// the archive written.
func (a *app) finishCopy(ctx context.Context, dst *mirror.Destination, out *copyOutput) error {
	if dst.Kind != mirror.Tar {
		return nil
	}
	if err := dst.Commit(ctx); err != nil {
		return err
	}
	rd, err := dst.Reader(ctx)
	if err != nil {
		return err
	}
	for _, v := range out.Versions {
		desc, err := rd.Resolve(ctx, v.Digest.String())
		if err != nil {
			return fmt.Errorf("check %s: %s in the archive written: %w", dst.Name, v.Digest, err)
		}
		if err := mirror.Check(ctx, rd, desc, v); err != nil {
			return fmt.Errorf("check %s: %w", dst.Name, err)
		}
	}
	return nil
}

// verifyCopy verifies the versions copied at a registry destination;
// progress is told of each version with all.
func verifyCopy(ctx context.Context, v *verify.Verifier, dst *mirror.Destination, digests []digest.Digest, all bool, progress func(done, total int, o verify.Outcome), out *copyOutput) error {
	if all {
		sum, err := v.VerifyAll(ctx, dst.Name, verify.AllOptions{Progress: progress})
		if err != nil {
			return err
		}
		out.Verification = sum
		if sum.Failed > 0 || sum.Errors > 0 {
			return fmt.Errorf("verify the copy %s: %d of %d versions failed verification, %d could not be verified: %w", dst.Name, sum.Failed, sum.Versions, sum.Errors, errdef.ErrVerification)
		}
		out.Verified = true
		return nil
	}
	for _, d := range digests {
		_, rep, err := v.Verify(ctx, dst.Name+"@"+d.String())
		if rep != nil {
			out.Verification = rep
		}
		if err != nil {
			return fmt.Errorf("verify the copy %s@%s: %w", dst.Name, d, err)
		}
	}
	out.Verified = len(digests) > 0
	return nil
}

// printCopy prints the outcome, totals first added up.
func (a *app) printCopy(out *copyOutput, err error) error {
	for _, v := range out.Versions {
		if v == nil {
			continue
		}
		out.Manifests += v.Manifests
		out.Blobs += v.Blobs
		out.Bytes += v.Bytes
		out.Skipped += v.Skipped
		for k, n := range v.Accessories {
			out.Accessories[k] += n
		}
		out.LifecycleEvents += v.LifecycleEvents
		out.Approvals += v.Approvals
	}
	out.ExitCode = cli.ExitCode(err)
	if err != nil {
		out.Error = err.Error()
	}
	if a.Output == "json" {
		a.EmitJSON(out)
	} else {
		a.printCopyText(a.Stdout, out)
	}
	if err != nil {
		return cli.Reported{Err: err}
	}
	return nil
}

func (a *app) printCopyText(w io.Writer, out *copyOutput) {
	for _, v := range out.Versions {
		if v == nil {
			continue
		}
		name := v.Digest.String()
		if v.Tag != "" {
			name = v.Tag + " " + name
		}
		var acc []string
		for _, k := range slices.Sorted(maps.Keys(v.Accessories)) {
			acc = append(acc, fmt.Sprintf("%d %s", v.Accessories[k], k))
		}
		fmt.Fprintf(w, "copied %s: %d manifests, %d blobs, %d bytes written, %d already there; accessories: %s; %d lifecycle events, %d approvals\n",
			name, v.Manifests, v.Blobs, v.Bytes, v.Skipped, orNone(acc), v.LifecycleEvents, v.Approvals)
		for _, m := range v.Merged {
			fmt.Fprintf(w, "  merged %s with the entries already at the destination\n", m)
		}
	}
	for _, tag := range slices.Sorted(maps.Keys(out.Failed)) {
		fmt.Fprintf(w, "FAILED %s: %s\n", tag, out.Failed[tag])
	}
	switch {
	case out.Verified:
		fmt.Fprintf(w, "verified at %s\n", out.Destination)
	case out.Error == "":
		fmt.Fprintf(w, "checked %s: every manifest and blob re-hashed\n", out.Destination)
	}
}
