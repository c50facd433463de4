package ociwf

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/content"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

// ReadBuild reads back the workflow version desc names from src, exactly
// as it is stored: the manifest (ReadManifest), then the config and the
// three layers, concurrently, each at most its limit and re-hashed against
// its descriptor. The config and the plan must decode and name the layers
// (the config its plan, the plan its source), and the source must parse.
// The Build holds the stored bytes as they are, the decoded plan and the
// parsed source; Created is the manifest's org.opencontainers.image.created,
// when it parses. ReadBuild does not recompile the source: Reproduce does.
//
// Content that is not what its descriptor says is a *ContentError; a
// manifest or config that is not a workflow's matches errdef.ErrNotWorkflow;
// a plan that does not decode, a config or plan naming other layers and a
// source that does not parse match errdef.ErrVerification.
func ReadBuild(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor) (*Manifest, *Build, error) {
	m, err := ReadManifest(ctx, src, desc)
	if err != nil {
		return nil, nil, fmt.Errorf("manifest %s: %w", desc.Digest, err)
	}
	parts := m.Parts()
	data := make([][]byte, len(parts))
	var g errgroup.Group
	for i, p := range parts {
		g.Go(func() (err error) {
			if data[i], err = FetchAll(ctx, src, p.Descriptor, p.Limit); err != nil {
				return fmt.Errorf("%s: %w", p.Name, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, fmt.Errorf("workflow %s: %w", desc.Digest, err)
	}
	bad := func(format string, args ...any) (*Manifest, *Build, error) {
		return nil, nil, fmt.Errorf("workflow %s: "+format, append([]any{desc.Digest}, args...)...)
	}
	b := &Build{Config: data[0], Source: data[1], PlanJSON: data[2], SBOM: data[3]}
	var cfg Config
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		return bad("config %s does not decode: %v: %w", m.Config.Digest, err, errdef.ErrNotWorkflow)
	}
	if cfg.PlanDigest != m.Plan.Digest.String() {
		return bad("the config names plan %q, the manifest plan layer %s: %w", cfg.PlanDigest, m.Plan.Digest, errdef.ErrVerification)
	}
	if b.Plan, err = plan.Decode(b.PlanJSON); err != nil {
		return bad("plan layer %s does not decode: %w: %w", m.Plan.Digest, err, errdef.ErrVerification)
	}
	if s := b.Plan.Source; s.Digest != m.Source.Digest.String() || s.Size != m.Source.Size {
		return bad("the plan names source %s (%d bytes), the manifest source layer %s (%d bytes): %w", s.Digest, s.Size, m.Source.Digest, m.Source.Size, errdef.ErrVerification)
	}
	if b.Workflow, err = dsl.Parse(SourceTitle, b.Source); err != nil {
		return bad("source layer %s does not parse: %w: %w", m.Source.Digest, err, errdef.ErrVerification)
	}
	if t, err := time.Parse(time.RFC3339, m.Annotations[ocispec.AnnotationCreated]); err == nil {
		b.Created = t
	}
	return m, b, nil
}

// IrreproducibleError reports a plan layer that the source layer does not
// recompile to. It matches errdef.ErrVerification; Err, why the source
// does not compile, is not unwrapped: whatever made it fail, the stored
// plan is unverified.
type IrreproducibleError struct {
	// Plan is the stored plan's digest.
	Plan digest.Digest
	// Recompiled is the digest of the plan the source recompiles to; empty
	// when it does not compile.
	Recompiled digest.Digest
	// Err is why the source does not compile with the plan's resolution,
	// when it does not.
	Err error
}

// Error names the stored plan and what the source compiles to instead.
func (e *IrreproducibleError) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("the source layer does not compile with the resolution plan %s records: %v", e.Plan, e.Err)
	}
	return fmt.Sprintf("the source layer recompiles to plan %s, not to the stored plan %s", e.Recompiled, e.Plan)
}

// Is reports whether target is errdef.ErrVerification.
func (e *IrreproducibleError) Is(target error) bool { return target == errdef.ErrVerification }

// Reproduce recompiles source offline, resolving every reference as p (the
// decoded planJSON) records it, and compares the result with planJSON byte
// for byte: a stored plan is what its stored source compiles to, or it is
// an *IrreproducibleError. A cancelled ctx is returned as ctx.Err().
func Reproduce(ctx context.Context, source, planJSON []byte, p *plan.Plan) error {
	return ReproduceWith(ctx, source, planJSON, p, ReproduceOptions{})
}

// ReproduceOptions tune ReproduceWith.
type ReproduceOptions struct {
	// Conditions, if set, is passed to Compile (CompileOptions.Conditions).
	Conditions *dsl.Conditions
}

// ReproduceWith is Reproduce with opts.
func ReproduceWith(ctx context.Context, source, planJSON []byte, p *plan.Plan, opts ReproduceOptions) error {
	want := digest.FromBytes(planJSON)
	rs := resolution{}
	for _, d := range p.Dependencies {
		rs[string(d.Kind)+" "+d.Ref] = d
	}
	b, err := Compile(ctx, source, CompileOptions{File: SourceTitle, Resolver: rs, PlanOnly: true, Conditions: opts.Conditions})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &IrreproducibleError{Plan: want, Err: err}
	}
	if !bytes.Equal(b.PlanJSON, planJSON) {
		return &IrreproducibleError{Plan: want, Recompiled: digest.FromBytes(b.PlanJSON)}
	}
	return nil
}

// resolution resolves references as a plan recorded them; references it
// does not list must carry their own digest.
type resolution map[string]plan.Dependency

func (rs resolution) Resolve(ctx context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	if d, ok := rs[string(kind)+" "+ref]; ok {
		return d, nil
	}
	return plan.Offline{}.Resolve(ctx, kind, ref)
}
