package registryext

import (
	"encoding/json"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/manifestlist"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/manifest/schema2"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// appendEntry is one of what append-only protects: its digest and a key made of
// every field of its descriptor.
type appendEntry struct {
	digest digest.Digest
	key    string
}

// entries are what append-only protects: the layers of an image manifest
// (its config changes as layers are added) or the manifests of an index,
// whole descriptors: a cosign signature is a layer annotation, several
// signatures of one payload share the layer digest, and a descriptor's
// embedded data (or platform) is what a client reads instead of the blob.
func entries(m distribution.Manifest) []appendEntry {
	ds, image := layersOf(m)
	switch m := m.(type) {
	case *ocischema.DeserializedImageIndex:
		ds = m.Manifests
	case *manifestlist.DeserializedManifestList:
		out := make([]appendEntry, 0, len(m.Manifests))
		for _, d := range m.Manifests {
			out = append(out, appendEntry{d.Digest, entryKey(d)})
		}
		return out
	default:
		if !image {
			ds = m.References()
		}
	}
	out := make([]appendEntry, 0, len(ds))
	for _, d := range ds {
		out = append(out, appendEntry{d.Digest, entryKey(d)})
	}
	return out
}

// layersOf returns the layers of an image manifest (OCI or Docker) and
// whether m is one.
func layersOf(m distribution.Manifest) ([]v1.Descriptor, bool) {
	switch m := m.(type) {
	case *ocischema.DeserializedManifest:
		return m.Layers, true
	case *schema2.DeserializedManifest:
		return m.Layers, true
	}
	return nil, false
}

// entryKey identifies an appendEntry by everything that describes it: every
// field the image-spec (or, for a Docker manifest list, Distribution)
// defines for a descriptor, annotations, data and platform included.
func entryKey(d any) string {
	b, _ := json.Marshal(d)
	return string(b)
}

// dropped lists the entries of prev that next lacks, counting repeats:
// next must hold every appendEntry of prev, as often as prev does.
func dropped(prev, next distribution.Manifest) []digest.Digest {
	have := map[string]int{}
	for _, e := range entries(next) {
		have[e.key]++
	}
	var out []digest.Digest
	for _, e := range entries(prev) {
		if have[e.key] == 0 {
			out = append(out, e.digest)
			continue
		}
		have[e.key]--
	}
	return out
}
