// Package publish runs the publication ceremony of a workflow in one call:
// push the artifact by digest, sign it, attest its SLSA v1 provenance and
// its CycloneDX SBOM, and only then apply the write-once tag.
//
// A failure at any step leaves the tag where it was (absent, or on the
// same digest), so no tag ever names a half-published artifact; the blobs,
// signature and attestations already stored are harmless and are reused by
// the next attempt. Rerunning a publish is idempotent: the same key's
// signature and attestations are recognised and not written twice.
package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/attest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
)

// Options tune Publish. Registry and Signer are required.
type Options struct {
	Registry *attest.Registry
	Signer   *attest.Signer
	// Tag is the write-once version tag; empty publishes by digest only.
	Tag string
	// Pack sets the artifact's created time, source and annotations.
	Pack ociwf.PackOptions
	// Provenance describes the builder and source; its timestamps are set
	// by Publish.
	Provenance provenance.Options
	// Annotations are signed with the signature (the tag is added).
	Annotations map[string]string
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
	// Now is the clock for provenance timestamps; nil means time.Now.
	Now func() time.Time
}

// Step is one completed step of the ceremony.
type Step struct {
	Name     string        `json:"name"`
	Existing bool          `json:"existing,omitempty"`
	Duration time.Duration `json:"durationNs"`
}

// Result is a completed publication.
type Result struct {
	// Reference is REPOSITORY@sha256:..., what runtimes should pin.
	Reference  string             `json:"reference"`
	Descriptor ocispec.Descriptor `json:"descriptor"`
	Tag        string             `json:"tag,omitempty"`
	Mode       attest.Mode        `json:"storage"`
	Steps      []Step             `json:"steps"`
}

// Publish runs the ceremony for b on dst (a registry target).
func Publish(ctx context.Context, dst *target.Target, b *ociwf.Build, opts Options) (*Result, error) {
	if opts.Registry == nil || opts.Signer == nil {
		return nil, fmt.Errorf("publish: a registry and a signer are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	res := &Result{Tag: opts.Tag, Mode: opts.Registry.Mode()}
	started := now()
	mark := started
	step := func(name string, existing bool) {
		t := now()
		res.Steps = append(res.Steps, Step{Name: name, Existing: existing, Duration: t.Sub(mark)})
		log.Info(name, "existing", existing, "duration", t.Sub(mark))
		mark = t
	}

	ceremony := func(ctx context.Context, desc ocispec.Descriptor) error {
		step("push", false)
		pushed := now()
		subj := attest.Subject{Repository: dst.Name, Digest: desc.Digest, Tag: opts.Tag}

		sig, err := opts.Registry.Sign(ctx, opts.Signer, subj, attest.SignOptions{Annotations: opts.Annotations})
		if err != nil {
			return fmt.Errorf("publish %s: sign: %w", subj, err)
		}
		step("sign", sig.Existing)

		po := opts.Provenance
		po.StartedOn, po.FinishedOn = started, pushed
		pred, err := provenance.Generate(b, po)
		if err != nil {
			return fmt.Errorf("publish %s: %w", subj, err)
		}
		raw, err := json.Marshal(pred)
		if err != nil {
			return fmt.Errorf("publish %s: provenance: %w", subj, err)
		}
		prov, err := opts.Registry.Attest(ctx, opts.Signer, subj, attest.AttestOptions{Type: attest.TypeSLSAProvenance1, Predicate: raw})
		if err != nil {
			return fmt.Errorf("publish %s: attest provenance: %w", subj, err)
		}
		step("attest-provenance", prov.Existing)

		sb, err := opts.Registry.Attest(ctx, opts.Signer, subj, attest.AttestOptions{Type: attest.TypeCycloneDX, Predicate: b.SBOM})
		if err != nil {
			return fmt.Errorf("publish %s: attest SBOM: %w", subj, err)
		}
		step("attest-sbom", sb.Existing)
		return nil
	}

	desc, err := ociwf.Push(ctx, dst.Store, b, opts.Tag, ociwf.PushOptions{
		PackOptions: opts.Pack,
		Logger:      log,
		BeforeTag:   ceremony,
	})
	if err != nil {
		return nil, err
	}
	if opts.Tag != "" {
		step("tag", false)
	}
	res.Descriptor = desc
	res.Reference = dst.Pinned(desc.Digest)
	return res, nil
}
