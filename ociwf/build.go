package ociwf

import (
	"context"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/internal/canon"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/sbom"
)

// Build is a compiled workflow version: everything that goes into its
// artifact.
type Build struct {
	Workflow *dsl.Workflow
	Plan     *plan.Plan
	// Source, PlanJSON, SBOM and Config are the exact bytes of the layers
	// and of the config blob.
	Source   []byte
	PlanJSON []byte
	SBOM     []byte
	Config   []byte
	// Created is the build time Compile was given (CompileOptions.Created):
	// recorded in the SBOM, and by Pack as the artifact's creation time.
	// Zero means none was given.
	Created time.Time
}

// CompileOptions tune Compile. The zero value compiles offline.
type CompileOptions struct {
	// File names the source in error messages.
	File string
	// Resolver pins image and uses references. Nil means plan.Offline:
	// every reference must already carry a digest, and no with is checked
	// against its sub-workflow's params (a RegistryResolver reads them).
	Resolver plan.Resolver
	// Created, if not zero, is the build time: recorded in the SBOM and
	// carried in Build.Created for Pack (set it from SOURCE_DATE_EPOCH for
	// reproducible output).
	Created time.Time
	// ToolVersion is recorded in the SBOM as the generating tool's version.
	ToolVersion string
	// PlanOnly compiles the plan and nothing else: Build.SBOM and
	// Build.Config stay nil. A verifier that recompiles a stored plan to
	// compare it needs no more.
	PlanOnly bool
	// Conditions, if set, keeps the outcome of type-checking each step
	// condition across compiles (dsl.Conditions): a verifier recompiling
	// many versions of one workflow checks each condition once.
	Conditions *dsl.Conditions
}

// Config is the content of the config blob: a small summary of the workflow
// for registries and UIs that only look at the config.
type Config struct {
	Name        string        `json:"name"`
	Version     string        `json:"version"`
	Description string        `json:"description,omitempty"`
	Params      []ConfigParam `json:"params,omitempty"`
	Steps       int           `json:"steps"`
	PlanDigest  string        `json:"planDigest"`
}

// ConfigParam summarises one parameter in the config blob.
type ConfigParam struct {
	Name     string `json:"name"`
	Type     string `json:"type"`
	Required bool   `json:"required,omitempty"`
}

// Compile parses, validates and compiles workflow source into a Build. A
// Build whose layers or config would be over their limits (see
// MaxSourceBytes) is refused here already, matching errdef.ErrTooLarge.
func Compile(ctx context.Context, src []byte, opts CompileOptions) (*Build, error) {
	file := opts.File
	if file == "" {
		file = "workflow.yaml"
	}
	wf, err := dsl.ParseWith(file, src, dsl.ParseOptions{Conditions: opts.Conditions})
	if err != nil {
		return nil, err
	}
	r := opts.Resolver
	if r == nil {
		r = plan.Offline{}
	}
	p, err := plan.Compile(ctx, wf, src, r)
	if err != nil {
		return nil, err
	}
	planJSON, err := p.Encode()
	if err != nil {
		return nil, err
	}
	b := &Build{Workflow: wf, Plan: p, Source: src, PlanJSON: planJSON, Created: opts.Created}
	if !opts.PlanOnly {
		if b.SBOM, b.Config, err = describe(p, planJSON, opts); err != nil {
			return nil, err
		}
	}
	if err := checkSizes(b); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	return b, nil
}

// describe generates the SBOM and the config blob of a compiled plan.
func describe(p *plan.Plan, planJSON []byte, opts CompileOptions) (bom, cfgJSON []byte, err error) {
	planDigest := digest.FromBytes(planJSON).String()
	bom, err = sbom.Generate(p, planDigest, sbom.Options{Created: opts.Created, ToolVersion: opts.ToolVersion})
	if err != nil {
		return nil, nil, err
	}
	cfg := Config{Name: p.Workflow.Name, Version: p.Workflow.Version, Description: p.Workflow.Description, Steps: len(p.Steps), PlanDigest: planDigest}
	for _, prm := range p.Params {
		cfg.Params = append(cfg.Params, ConfigParam{Name: prm.Name, Type: prm.Type, Required: prm.Required})
	}
	cfgJSON, err = canon.Marshal(cfg)
	if err != nil {
		return nil, nil, err
	}
	return bom, cfgJSON, nil
}
