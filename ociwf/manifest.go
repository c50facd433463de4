package ociwf

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/ociwf/errdef"
)

// Manifest is a parsed workflow manifest: the OCI manifest and its three
// layers by role.
type Manifest struct {
	ocispec.Manifest
	Source ocispec.Descriptor
	Plan   ocispec.Descriptor
	SBOM   ocispec.Descriptor
}

// ParseManifest decodes manifest bytes and checks that they describe an
// ociwf workflow: OCI image manifest media type, our artifactType and config
// media type, exactly the three layers in order, each with a safe, distinct
// title and a size within its limit. Failures wrap errdef.ErrNotWorkflow.
func ParseManifest(b []byte) (*Manifest, error) {
	if len(b) > MaxManifestBytes {
		return nil, fmt.Errorf("manifest is %d bytes, over the %d byte limit: %w", len(b), MaxManifestBytes, errdef.ErrTooLarge)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m.Manifest); err != nil {
		return nil, fmt.Errorf("decode manifest: %v: %w", err, errdef.ErrNotWorkflow)
	}
	bad := func(format string, args ...any) (*Manifest, error) {
		return nil, fmt.Errorf("manifest: "+format+": %w", append(args, errdef.ErrNotWorkflow)...)
	}
	if m.MediaType != ocispec.MediaTypeImageManifest {
		return bad("media type %q, want %q", m.MediaType, ocispec.MediaTypeImageManifest)
	}
	if m.SchemaVersion != 2 {
		return bad("schemaVersion %d, want 2", m.SchemaVersion)
	}
	if m.ArtifactType != ArtifactType {
		return bad("artifactType %q, want %q", m.ArtifactType, ArtifactType)
	}
	if m.Config.MediaType != ConfigMediaType {
		return bad("config media type %q, want %q", m.Config.MediaType, ConfigMediaType)
	}
	if err := checkDescriptor(m.Config, MaxConfigBytes); err != nil {
		return bad("config: %v", err)
	}
	want := []struct {
		mediaType string
		max       int64
		dst       *ocispec.Descriptor
	}{
		{SourceMediaType, MaxSourceBytes, &m.Source},
		{PlanMediaType, MaxPlanBytes, &m.Plan},
		{SBOMMediaType, MaxSBOMBytes, &m.SBOM},
	}
	if len(m.Layers) != len(want) {
		return bad("%d layers, want %d (source, plan, SBOM)", len(m.Layers), len(want))
	}
	titles := map[string]bool{}
	for i, w := range want {
		l := m.Layers[i]
		if l.MediaType != w.mediaType {
			return bad("layer %d media type %q, want %q", i, l.MediaType, w.mediaType)
		}
		if err := checkDescriptor(l, w.max); err != nil {
			return bad("layer %d: %v", i, err)
		}
		title := l.Annotations[ocispec.AnnotationTitle]
		if err := CheckTitle(title); err != nil {
			return bad("layer %d: %v", i, err)
		}
		if titles[title] {
			return bad("layer %d: title %q repeats", i, title)
		}
		titles[title] = true
		*w.dst = l
	}
	return &m, nil
}

func checkDescriptor(d ocispec.Descriptor, max int64) error {
	if err := d.Digest.Validate(); err != nil {
		return fmt.Errorf("digest %q: %v", d.Digest, err)
	}
	if d.Size < 0 || d.Size > max {
		return fmt.Errorf("size %d outside 0..%d", d.Size, max)
	}
	return nil
}

// CheckTitle accepts a layer title only if it is a plain file name that
// cannot escape the directory it is written to.
func CheckTitle(title string) error {
	switch {
	case title == "":
		return fmt.Errorf("missing %s annotation", ocispec.AnnotationTitle)
	case len(title) > 255,
		title == "." || title == "..",
		strings.ContainsAny(title, "/\\\x00:"),
		filepath.Base(title) != title,
		filepath.IsAbs(title),
		strings.HasPrefix(title, "-"):
		return fmt.Errorf("unsafe title %q: a title must be a plain file name", title)
	}
	return nil
}

// Part is one blob of a workflow manifest: its role, its descriptor and
// the size limit a reader enforces on it.
type Part struct {
	// Name is the role: "config", "source layer", "plan layer" or
	// "SBOM layer".
	Name       string
	Descriptor ocispec.Descriptor
	Limit      int64
}

// Parts returns the config and the source, plan and SBOM layers of m, in
// that order.
func (m *Manifest) Parts() []Part {
	return []Part{
		{"config", m.Config, MaxConfigBytes},
		{"source layer", m.Source, MaxSourceBytes},
		{"plan layer", m.Plan, MaxPlanBytes},
		{"SBOM layer", m.SBOM, MaxSBOMBytes},
	}
}
