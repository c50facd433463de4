package registryext_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// Media types and annotations cosign writes (cosign v2: pkg/types,
// pkg/oci/static).
const (
	simpleSigning = "application/vnd.dev.cosign.simplesigning.v1+json"
	dsse          = "application/vnd.dsse.envelope.v1+json"
	sigAnnotation = "dev.cosignproject.cosign/signature"
)

// layer describes one accessory layer: its content, media type and
// annotations.
type layer struct {
	content, mediaType string
	annotations        map[string]string
}

// signature is a cosign signature layer of payload.
func signature(payload, sig string) layer {
	return layer{payload, simpleSigning, map[string]string{sigAnnotation: sig}}
}

// accessory builds a manifest as cosign writes it to a .sig, .att or
// .sbom tag, pushing its blobs; edit may change the layer descriptors.
func (c *client) accessory(edit func([]ocispec.Descriptor), layers ...layer) []byte {
	c.t.Helper()
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: c.blob("{}")}
	m.Config.MediaType = ocispec.MediaTypeImageConfig
	m.SchemaVersion = 2
	for _, l := range layers {
		d := c.blob(l.content)
		d.MediaType, d.Annotations = l.mediaType, l.annotations
		m.Layers = append(m.Layers, d)
	}
	if edit != nil {
		edit(m.Layers)
	}
	b, _ := json.Marshal(m)
	return b
}

// fallbackIndex is an OCI referrers fallback index of manifests.
func fallbackIndex(ms ...[]byte) []byte {
	idx := ocispec.Index{MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{}}
	idx.SchemaVersion = 2
	for _, m := range ms {
		idx.Manifests = append(idx.Manifests, ocispec.Descriptor{MediaType: childType(m), Digest: digest.FromBytes(m), Size: int64(len(m))})
	}
	b, _ := json.Marshal(idx)
	return b
}

// Append-only compares whole descriptors: a signature layer given a data
// field or a platform is a signature replaced, not kept.
func TestAppendOnlyComparesWholeDescriptors(t *testing.T) {
	srv := registrytest.Start(t, registryext.Config{})
	c := newClient(t, srv.Addr(), "workflows/whole")
	subject := c.manifest("subject")
	sig := "sha256-" + digest.FromBytes(subject).Encoded() + ".sig"
	expect(t, "sign", c.put(sig, c.accessory(nil, signature("payload", "alice"))), http.StatusCreated, "")
	cases := []struct {
		name string
		edit func([]ocispec.Descriptor)
	}{
		{"data", func(ds []ocispec.Descriptor) { ds[0].Data = []byte("payload") }},
		{"platform", func(ds []ocispec.Descriptor) { ds[0].Platform = &ocispec.Platform{OS: "linux", Architecture: "amd64"} }},
		{"urls", func(ds []ocispec.Descriptor) { ds[0].URLs = []string{"https://example.com/payload"} }},
		{"artifactType", func(ds []ocispec.Descriptor) { ds[0].ArtifactType = "application/example" }},
		{"annotation added", func(ds []ocispec.Descriptor) { ds[0].Annotations["x"] = "y" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := c.accessory(tc.edit, signature("payload", "alice"), signature("payload", "bob"))
			expect(t, "re-put with layer 0 changed", c.put(sig, m), http.StatusForbidden, "append-only (rule cosign-accessories): the new manifest drops "+digest.FromString("payload").String())
		})
	}
	expect(t, "a signature added", c.put(sig, c.accessory(nil, signature("payload", "alice"), signature("payload", "bob"))), http.StatusCreated, "")
}

// Cosign's reserved tags hold only what cosign and the referrers
// fallback put there.
func TestAccessoryTagsHoldAccessories(t *testing.T) {
	srv := registrytest.Start(t, registryext.Config{})
	c := newClient(t, srv.Addr(), "workflows/acc")
	subject := c.manifest("subject")
	sd := digest.FromBytes(subject)
	expect(t, "push the subject", c.put("1.0.0", subject), http.StatusCreated, "")
	base := "sha256-" + sd.Encoded()
	att := layer{`{"payloadType":"application/vnd.in-toto+json"}`, dsse, map[string]string{sigAnnotation: "", "predicateType": "https://slsa.dev/provenance/v1"}}
	attached := layer{`{"payloadType":"application/vnd.in-toto+json","x":1}`, dsse, map[string]string{sigAnnotation: ""}}
	ref := c.referrer(subject, "application/vnd.example.note", "note")
	expect(t, "push a referrer", c.put(digest.FromBytes(ref).String(), ref), http.StatusCreated, "")
	other := c.referrer(c.manifest("other subject"), "application/vnd.example.note", "other note")
	expect(t, "push a referrer of another subject", c.put(digest.FromBytes(other).String(), other), http.StatusCreated, "")
	workflow := c.accessory(func(ds []ocispec.Descriptor) {}, layer{"version: 1", "application/vnd.ociwf.workflow.dsl.v1+yaml", nil})
	workflow = []byte(strings.Replace(string(workflow), `"config":`, `"artifactType":"application/vnd.ociwf.workflow.v1+json","config":`, 1))

	cases := []struct {
		name, tag string
		manifest  []byte
		status    int
		body      string
	}{
		{"a cosign signature", base + ".sig", c.accessory(nil, signature("payload", "alice")), http.StatusCreated, ""},
		{"a signature layer without the signature annotation", base + ".sig", c.accessory(nil, signature("payload", "alice"), layer{"payload", simpleSigning, nil}), http.StatusForbidden,
			"tag " + base + ".sig of workflows/acc is reserved for cosign's signatures of " + sd.String() + ": layer 1 is not a cosign signature"},
		{"a plain image as a signature", base + ".sig", c.manifest("sig layer"), http.StatusForbidden, "layer 0 is not a cosign signature"},
		{"an attestation as a signature", base + ".sig", c.accessory(nil, att), http.StatusForbidden, "layer 0 is not a cosign signature"},
		{"a workflow artifact as a signature", base + ".sig", workflow, http.StatusForbidden, "reserved for cosign's signatures"},
		{"no layers", base + ".sig", c.accessory(nil), http.StatusForbidden, "holds no"},
		{"an index as a signature", base + ".sig", fallbackIndex(ref), http.StatusForbidden, "is not an image manifest"},
		{"cosign attestations", base + ".att", c.accessory(nil, att, attached), http.StatusCreated, ""},
		{"a signature as an attestation", base + ".att", c.accessory(nil, att, attached, signature("payload", "alice")), http.StatusForbidden, "layer 2 is not a cosign attestation"},
		{"an SBOM", base + ".sbom", c.accessory(nil, layer{`{"spdxVersion":"SPDX-2.3"}`, "text/spdx+json", nil}), http.StatusCreated, ""},
		{"a plain image as an SBOM", base + ".sbom", c.manifest("sbom layer"), http.StatusForbidden, "layer 0 is not an SBOM"},
		{"a referrers fallback index", base, fallbackIndex(ref), http.StatusCreated, ""},
		{"a referrer of another subject in the fallback index", base, fallbackIndex(ref, other), http.StatusForbidden, "entry 1 (" + digest.FromBytes(other).String() + ") is not a referrer of " + sd.String()},
		{"a plain image as a fallback index", "sha256-" + digest.FromBytes(ref).Encoded(), c.manifest("image"), http.StatusForbidden, "is not an image index"},
		{"upper case", strings.ToUpper(base) + ".SIG", c.manifest("sig layer"), http.StatusForbidden, "is not a cosign signature"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			expect(t, tc.name, c.put(tc.tag, tc.manifest), tc.status, tc.body)
		})
	}
	// With accessory tags mutable, they still hold only accessories.
	rules, err := immutability.Parse("rules.yaml", []byte("version: ociwf.dev/immutability/v1\naccessories: mutable\n"))
	if err != nil {
		t.Fatal(err)
	}
	srv = registrytest.Start(t, registryext.Config{Rules: rules})
	c = newClient(t, srv.Addr(), "workflows/acc")
	expect(t, "a plain image as a signature, accessories mutable", c.put(base+".sig", c.manifest("sig layer")), http.StatusForbidden, "is not a cosign signature")
	expect(t, "a signature, accessories mutable", c.put(base+".sig", c.accessory(nil, signature("payload", "alice"))), http.StatusCreated, "")
	expect(t, "replaced, accessories mutable", c.put(base+".sig", c.accessory(nil, signature("payload", "bob"))), http.StatusCreated, "")
}
