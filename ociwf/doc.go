// Package ociwf stores workflows as immutable OCI artifacts.
//
// The verbs follow the life of a workflow version: Compile turns DSL source
// into a Build (the source, its canonical execution plan and its CycloneDX
// SBOM); Pack lays a Build out as one OCI image-spec v1.1 manifest; Push
// publishes it by digest to any oras Target (a registry repository or an OCI
// image layout) and applies the tag last, write-once; Pull and Inspect read it
// back by digest with every byte re-checked, through FetchAll, the one
// verified read. RegistryResolver pins dependencies against registries for
// Compile.
//
// The artifact format is documented in docs/artifact-format.md; the DSL in
// docs/dsl.md.
package ociwf

import (
	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/plan"
)

// Media types and layer titles of the workflow artifact.
const (
	// ArtifactType is the manifest artifactType of every workflow version.
	ArtifactType = "application/vnd.ociwf.workflow.v1+json"
	// ConfigMediaType is the media type of the config blob.
	ConfigMediaType = "application/vnd.ociwf.workflow.config.v1+json"
	// SourceMediaType is the media type of the DSL source layer.
	SourceMediaType = "application/vnd.ociwf.workflow.dsl.v1+yaml"
	// PlanMediaType is the media type of the compiled plan layer.
	PlanMediaType = "application/vnd.ociwf.workflow.plan.v1+json"
	// SBOMMediaType is the media type of the SBOM layer (CycloneDX JSON).
	SBOMMediaType = "application/vnd.cyclonedx+json"

	// SourceTitle, PlanTitle and SBOMTitle are the file names the layers
	// carry in org.opencontainers.image.title.
	SourceTitle = "workflow.yaml"
	PlanTitle   = "plan.json"
	SBOMTitle   = "sbom.cdx.json"
)

// Size limits of an artifact's parts. Pack and Push refuse a Build over any
// of them before writing anything, and reads enforce the same ones.
const (
	// MaxManifestBytes bounds a manifest (the Distribution default).
	MaxManifestBytes = 4 << 20
	// MaxConfigBytes bounds the config blob.
	MaxConfigBytes = 1 << 20
	// MaxSourceBytes bounds the DSL layer (the DSL's own limit).
	MaxSourceBytes = dsl.MaxSourceBytes
	// MaxPlanBytes bounds the plan layer.
	MaxPlanBytes = plan.MaxBytes
	// MaxSBOMBytes bounds the SBOM layer.
	MaxSBOMBytes = 64 << 20
)
