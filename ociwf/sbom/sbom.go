// Package sbom generates the CycloneDX 1.6 software bill of materials of a
// compiled workflow: the workflow itself and every pinned container image and
// sub-workflow, as pkg:oci package URLs with their digests.
package sbom

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"path"
	"strings"
	"time"

	cdx "github.com/CycloneDX/cyclonedx-go"
	packageurl "github.com/package-url/packageurl-go"

	"ociwf.dev/ociwf/plan"
)

// MediaType is the media type of the SBOM layer.
const MediaType = "application/vnd.cyclonedx+json"

// Options tune Generate. The zero value is valid.
type Options struct {
	// Created, if not zero, is recorded as the BOM timestamp. Leave it zero
	// (or set it from SOURCE_DATE_EPOCH) to keep the bytes reproducible.
	Created time.Time
	// ToolVersion is the ociwf version recorded as the generating tool.
	ToolVersion string
}

// Generate returns the SBOM of a plan whose canonical encoding has digest
// planDigest. The same inputs always give the same bytes.
func Generate(p *plan.Plan, planDigest string, opts Options) ([]byte, error) {
	bom := cdx.NewBOM()
	bom.SerialNumber = serial(planDigest)
	wfRef := "workflow:" + p.Workflow.Name + "@" + p.Workflow.Version
	tool := cdx.Component{Type: cdx.ComponentTypeApplication, Name: "ociwf", Version: opts.ToolVersion}
	props := []cdx.Property{
		{Name: "ociwf:plan.digest", Value: planDigest},
		{Name: "ociwf:source.digest", Value: p.Source.Digest},
	}
	bom.Metadata = &cdx.Metadata{
		Tools: &cdx.ToolsChoice{Components: &[]cdx.Component{tool}},
		Component: &cdx.Component{
			BOMRef:      wfRef,
			Type:        cdx.ComponentTypeApplication,
			Name:        p.Workflow.Name,
			Version:     p.Workflow.Version,
			Description: p.Workflow.Description,
			Properties:  &props,
		},
	}
	if !opts.Created.IsZero() {
		bom.Metadata.Timestamp = opts.Created.UTC().Format(time.RFC3339)
	}

	var comps []cdx.Component
	var refs []string
	index := map[string]int{}
	for _, d := range p.Dependencies {
		if i, ok := index[d.Pinned]; ok {
			*comps[i].Properties = append(*comps[i].Properties, cdx.Property{Name: "ociwf:ref", Value: d.Ref})
			continue
		}
		purl, err := PURL(d)
		if err != nil {
			return nil, err
		}
		typ := cdx.ComponentTypeContainer
		if d.Kind == plan.KindWorkflow {
			typ = cdx.ComponentTypeApplication
		}
		repo, _, _ := strings.Cut(d.Pinned, "@")
		alg, hex, _ := strings.Cut(d.Digest, ":")
		cprops := []cdx.Property{{Name: "ociwf:kind", Value: string(d.Kind)}, {Name: "ociwf:ref", Value: d.Ref}}
		c := cdx.Component{
			BOMRef:     purl,
			Type:       typ,
			Name:       path.Base(repo),
			Version:    d.Digest,
			PackageURL: purl,
			Properties: &cprops,
		}
		if alg == "sha256" {
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA256, Value: hex}}
		} else if alg == "sha512" {
			c.Hashes = &[]cdx.Hash{{Algorithm: cdx.HashAlgoSHA512, Value: hex}}
		}
		index[d.Pinned] = len(comps)
		comps = append(comps, c)
		refs = append(refs, purl)
	}
	if len(comps) > 0 {
		bom.Components = &comps
	}
	bom.Dependencies = &[]cdx.Dependency{{Ref: wfRef, Dependencies: &refs}}

	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, cdx.SpecVersion1_6); err != nil {
		return nil, fmt.Errorf("encode SBOM: %w", err)
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// PURL returns the pkg:oci package URL of a pinned dependency, e.g.
// pkg:oci/alpine@sha256:ab12...?repository_url=docker.io%2Flibrary%2Falpine
// (packageurl-go's canonical encoding).
func PURL(d plan.Dependency) (string, error) {
	repo, _, ok := strings.Cut(d.Pinned, "@")
	if !ok {
		return "", fmt.Errorf("dependency %q is not pinned", d.Ref)
	}
	q := packageurl.Qualifiers{{Key: "repository_url", Value: repo}}
	return packageurl.NewPackageURL(packageurl.TypeOCI, "", strings.ToLower(path.Base(repo)), d.Digest, q, "").ToString(), nil
}

// serial derives a stable urn:uuid (RFC 9562 version 8) from the plan digest.
func serial(planDigest string) string {
	h := sha256.Sum256([]byte("ociwf.dev/sbom/" + planDigest))
	h[6] = (h[6] & 0x0f) | 0x80
	h[8] = (h[8] & 0x3f) | 0x80
	return fmt.Sprintf("urn:uuid:%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}
