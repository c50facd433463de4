// Package provenance generates the SLSA v1 provenance of a published
// workflow: what was compiled (the DSL source, its git commit, every pinned
// image and sub-workflow), by which builder, and when. The predicate uses
// in-toto-golang's SLSA v1 types; Marshal encodes it as the specification
// spells it, for an in-toto statement whose subject is the artifact's
// manifest digest (see attest.Registry.Attest).
package provenance

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"strings"
	"time"

	"github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/common"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/sbom"
)

// PredicateType is the SLSA v1 provenance predicate type.
const PredicateType = slsa1.PredicateSLSAProvenance

// BuildType identifies how ociwf builds: compile the DSL into a pinned plan
// and SBOM and pack them into one OCI artifact. Its externalParameters are
// ExternalParameters.
const BuildType = "https://ociwf.dev/slsa/workflow-publish/v1"

// LocalBuilderID names a build on a developer machine, where no CI system
// vouches for the run.
const LocalBuilderID = "https://ociwf.dev/builders/local/v1"

// Options describe the run. Zero fields are left out.
type Options struct {
	// BuilderID is runDetails.builder.id; empty means LocalBuilderID.
	BuilderID string
	// ToolVersion is the ociwf version, recorded in builder.version.
	ToolVersion string
	// SourceURI is the source repository, e.g.
	// git+https://github.com/acme/workflows.
	SourceURI string
	// SourceRef is the git ref built, e.g. refs/heads/main.
	SourceRef string
	// SourceRevision is the git commit built.
	SourceRevision string
	// WorkflowPath is the DSL file's path inside the source repository.
	WorkflowPath string
	// InvocationID identifies the CI run.
	InvocationID string
	// StartedOn and FinishedOn bound the build.
	StartedOn, FinishedOn time.Time
}

// ExternalParameters are the inputs the user controls, the
// buildDefinition.externalParameters of BuildType.
type ExternalParameters struct {
	Source   *SourceParameters  `json:"source,omitempty"`
	Workflow WorkflowParameters `json:"workflow"`
	// Params are the workflow's declared parameters with their defaults
	// (null for parameters without one).
	Params map[string]any `json:"params,omitempty"`
}

// SourceParameters locate the source the workflow was built from.
type SourceParameters struct {
	URI      string `json:"uri,omitempty"`
	Ref      string `json:"ref,omitempty"`
	Revision string `json:"revision,omitempty"`
}

// WorkflowParameters identify the workflow file and what it declares.
type WorkflowParameters struct {
	Path    string `json:"path,omitempty"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

// Generate returns the SLSA v1 provenance predicate of b.
func Generate(b *ociwf.Build, opts Options) (*slsa1.ProvenancePredicate, error) {
	if b == nil || b.Plan == nil {
		return nil, fmt.Errorf("provenance: no build: %w", errdef.ErrInvalid)
	}
	p := b.Plan
	ext := ExternalParameters{
		Workflow: WorkflowParameters{Path: opts.WorkflowPath, Name: p.Workflow.Name, Version: p.Workflow.Version},
	}
	if opts.SourceURI != "" || opts.SourceRef != "" || opts.SourceRevision != "" {
		ext.Source = &SourceParameters{URI: opts.SourceURI, Ref: opts.SourceRef, Revision: opts.SourceRevision}
	}
	if len(p.Params) > 0 {
		ext.Params = make(map[string]any, len(p.Params))
		for _, prm := range p.Params {
			ext.Params[prm.Name] = prm.Default
		}
	}

	srcName := opts.WorkflowPath
	if srcName == "" {
		srcName = ociwf.SourceTitle
	}
	deps := []slsa1.ResourceDescriptor{{
		Name:      srcName,
		Digest:    digestSet(b.Source),
		MediaType: ociwf.SourceMediaType,
	}}
	if opts.SourceRevision != "" {
		uri := opts.SourceURI
		if uri != "" && opts.SourceRef != "" {
			uri += "@" + opts.SourceRef
		}
		deps = append(deps, slsa1.ResourceDescriptor{URI: uri, Digest: common.DigestSet{"gitCommit": opts.SourceRevision}})
	}
	for _, d := range p.Dependencies {
		purl, err := sbom.PURL(d)
		if err != nil {
			return nil, fmt.Errorf("provenance: %w", err)
		}
		algo, hexd, ok := strings.Cut(d.Digest, ":")
		if !ok || algo == "" || hexd == "" {
			return nil, fmt.Errorf("provenance: dependency %q has digest %q: %w", d.Ref, d.Digest, errdef.ErrNotPinned)
		}
		deps = append(deps, slsa1.ResourceDescriptor{
			URI:         purl,
			Name:        d.Pinned,
			Digest:      common.DigestSet{algo: hexd},
			Annotations: map[string]any{"kind": string(d.Kind), "ref": d.Ref},
		})
	}

	builderID := opts.BuilderID
	if builderID == "" {
		builderID = LocalBuilderID
	}
	var version map[string]string
	if opts.ToolVersion != "" {
		version = map[string]string{"ociwf": opts.ToolVersion}
	}
	pred := &slsa1.ProvenancePredicate{
		BuildDefinition: slsa1.ProvenanceBuildDefinition{
			BuildType:            BuildType,
			ExternalParameters:   ext,
			ResolvedDependencies: deps,
		},
		RunDetails: slsa1.ProvenanceRunDetails{
			Builder: slsa1.Builder{ID: builderID, Version: maps.Clone(version)},
			BuildMetadata: slsa1.BuildMetadata{
				InvocationID: opts.InvocationID,
				StartedOn:    timePtr(opts.StartedOn),
				FinishedOn:   timePtr(opts.FinishedOn),
			},
			Byproducts: []slsa1.ResourceDescriptor{
				{Name: ociwf.PlanTitle, Digest: digestSet(b.PlanJSON), MediaType: ociwf.PlanMediaType},
				{Name: ociwf.SBOMTitle, Digest: digestSet(b.SBOM), MediaType: sbom.MediaType},
			},
		},
	}
	return pred, nil
}

// Marshal encodes pred as the JSON the SLSA v1 specification defines; use it
// instead of encoding/json. in-toto-golang's BuildMetadata spells the
// invocation ID "invocationID", where the specification and its protobuf
// schema spell it "invocationId": strict consumers (protojson, JSON schema
// validation) reject the former, and consumers that ignore unknown fields,
// as the specification tells them to, silently drop it.
// encoding/json still reads Marshal's output back into a
// slsa1.ProvenancePredicate, as it matches field names case-insensitively.
// Marshal also leaves out empty metadata and writes timestamps in UTC, as
// the in-toto Timestamp type requires.
func Marshal(pred *slsa1.ProvenancePredicate) ([]byte, error) {
	if pred == nil {
		return nil, fmt.Errorf("provenance: no predicate: %w", errdef.ErrInvalid)
	}
	type metadata struct {
		InvocationID string     `json:"invocationId,omitempty"`
		StartedOn    *time.Time `json:"startedOn,omitempty"`
		FinishedOn   *time.Time `json:"finishedOn,omitempty"`
	}
	type runDetails struct {
		Builder    slsa1.Builder              `json:"builder"`
		Metadata   *metadata                  `json:"metadata,omitempty"`
		Byproducts []slsa1.ResourceDescriptor `json:"byproducts,omitempty"`
	}
	utc := func(t *time.Time) *time.Time {
		if t == nil {
			return nil
		}
		u := t.UTC()
		return &u
	}
	rd := runDetails{Builder: pred.RunDetails.Builder, Byproducts: pred.RunDetails.Byproducts}
	if m := pred.RunDetails.BuildMetadata; m.InvocationID != "" || m.StartedOn != nil || m.FinishedOn != nil {
		rd.Metadata = &metadata{InvocationID: m.InvocationID, StartedOn: utc(m.StartedOn), FinishedOn: utc(m.FinishedOn)}
	}
	return json.Marshal(struct {
		BuildDefinition slsa1.ProvenanceBuildDefinition `json:"buildDefinition"`
		RunDetails      runDetails                      `json:"runDetails"`
	}{pred.BuildDefinition, rd})
}

func digestSet(b []byte) common.DigestSet {
	sum := sha256.Sum256(b)
	return common.DigestSet{"sha256": hex.EncodeToString(sum[:])}
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// Provenance is a decoded SLSA v1 provenance predicate.
type Provenance struct {
	slsa1.ProvenancePredicate
	// External is BuildDefinition.ExternalParameters read as BuildType's
	// ExternalParameters.
	External ExternalParameters
}

// Decode reads a SLSA v1 provenance predicate, as Marshal writes it or as
// another builder does, reading its externalParameters as
// ExternalParameters (fields of other build types are ignored). A document
// that does not decode is an error matching errdef.ErrInvalid.
func Decode(raw []byte) (*Provenance, error) {
	var p Provenance
	if err := json.Unmarshal(raw, &p.ProvenancePredicate); err != nil {
		return nil, fmt.Errorf("provenance: %v: %w", err, errdef.ErrInvalid)
	}
	if ext := p.BuildDefinition.ExternalParameters; ext != nil {
		b, err := json.Marshal(ext)
		if err == nil {
			err = json.Unmarshal(b, &p.External)
		}
		if err != nil {
			return nil, fmt.Errorf("provenance externalParameters: %v: %w", err, errdef.ErrInvalid)
		}
	}
	return &p, nil
}
