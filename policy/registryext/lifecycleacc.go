package registryext

import (
	"context"
	"encoding/json"
	"errors"
	"path"
	"slices"
	"strings"

	"github.com/distribution/distribution/v3"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/lifecycle"
)

// LifecycleRule names the denials that keep lifecycle events and
// approvals (in-toto statements of lifecycle.EventPredicateType and
// lifecycle.ApprovalPredicateType) and the versions they are about: such
// attestations can be added, never removed, and whatever they are stored
// in, their blobs and the version cannot be deleted, whatever the tags and
// the rules say.
const LifecycleRule = "lifecycle-accessories"

// What sigstore bundles and cosign attestations carry.
const (
	// bundleMediaType is a sigstore bundle v0.3, the single layer of a
	// bundle referrer.
	bundleMediaType = "application/vnd.dev.sigstore.bundle.v0.3+json"
	// bundlePredicateAnnotation is the bundle referrer's annotation of
	// its statement's predicate type (cosign v3's WriteReferrer, ociwf's
	// store).
	bundlePredicateAnnotation = "dev.sigstore.bundle.predicateType"
	// predicateTypeAnnotation is the annotation cosign attest and ociwf
	// give a DSSE layer of the .att tag.
	predicateTypeAnnotation = "predicateType"
	// maxStatementBytes bounds the blob read to find the predicate type
	// of an attestation layer without an annotation saying it, and
	// maxStatementReads the blobs read so for one manifest: past it,
	// layers without an annotation count as of no type.
	maxStatementBytes = 4 << 20
	maxStatementReads = 64
)

// isLifecycleType reports whether t is a lifecycle predicate type.
func isLifecycleType(t string) bool {
	return t == lifecycle.EventPredicateType || t == lifecycle.ApprovalPredicateType
}

// anyLifecycle reports whether types holds a lifecycle predicate type.
func anyLifecycle(types []string) bool { return slices.ContainsFunc(types, isLifecycleType) }

// lifecycleKind names what a lifecycle predicate type is, for messages.
func lifecycleKind(t string) string {
	if t == lifecycle.ApprovalPredicateType {
		return "approval"
	}
	return "event"
}

// blobReader is what reading an attestation layer needs of a blob store.
type blobReader interface {
	Stat(ctx context.Context, dgst digest.Digest) (v1.Descriptor, error)
	Get(ctx context.Context, dgst digest.Digest) ([]byte, error)
}

// layerType returns the predicate type of the statement in l, a layer of
// a manifest with annotations ann: for a DSSE envelope (the layers of the
// .att tag and of cosign's attestation referrers) its predicateType
// annotation, for a sigstore bundle the manifest's bundle predicate type
// annotation; without one, the type the statement inside the blob names.
// It is "" for any other layer, and for a blob that is missing, too large
// or not an attestation, or when reads (the blobs left to read) is spent.
func layerType(ctx context.Context, blobs blobReader, ann map[string]string, l v1.Descriptor, reads *int) string {
	var claimed string
	switch l.MediaType {
	case dsseMediaType:
		claimed = l.Annotations[predicateTypeAnnotation]
	case bundleMediaType:
		if claimed = l.Annotations[bundlePredicateAnnotation]; claimed == "" {
			claimed = ann[bundlePredicateAnnotation]
		}
	default:
		return ""
	}
	if claimed != "" {
		return claimed
	}
	if *reads <= 0 {
		return ""
	}
	*reads--
	desc, err := blobs.Stat(ctx, l.Digest)
	if err != nil || desc.Size > maxStatementBytes {
		return ""
	}
	b, err := blobs.Get(ctx, l.Digest)
	if err != nil {
		return ""
	}
	return statementType(b)
}

// statementType returns the predicate type of the in-toto statement in a
// DSSE envelope or a sigstore bundle's DSSE envelope, or "".
func statementType(b []byte) string {
	type envelope struct {
		PayloadType string `json:"payloadType"`
		Payload     []byte `json:"payload"` // base64, as encoding/json reads []byte
	}
	var doc struct {
		envelope
		DSSEEnvelope *envelope `json:"dsseEnvelope"`
	}
	if json.Unmarshal(b, &doc) != nil {
		return ""
	}
	env := doc.envelope
	if doc.DSSEEnvelope != nil {
		env = *doc.DSSEEnvelope
	}
	var st struct {
		PredicateType string `json:"predicateType"`
	}
	if env.PayloadType != "application/vnd.in-toto+json" || json.Unmarshal(env.Payload, &st) != nil {
		return ""
	}
	return st.PredicateType
}

// layerTypes returns the distinct predicate types of layers, in order.
func layerTypes(ctx context.Context, blobs blobReader, ann map[string]string, layers []v1.Descriptor) []string {
	var out []string
	reads := maxStatementReads
	for _, l := range layers {
		if t := layerType(ctx, blobs, ann, l, &reads); t != "" && !slices.Contains(out, t) {
			out = append(out, t)
		}
	}
	return out
}

// headOf decodes what the lifecycle checks need of a manifest.
func headOf(man distribution.Manifest) manifestHead {
	var h manifestHead
	if _, payload, err := man.Payload(); err == nil {
		_ = json.Unmarshal(payload, &h)
	}
	return h
}

// manifestTypes returns the predicate types of the attestations man
// carries, and for a referrer without any its artifact type.
func manifestTypes(ctx context.Context, blobs blobReader, man distribution.Manifest) []string {
	h := headOf(man)
	layers, _ := layersOf(man)
	types := layerTypes(ctx, blobs, h.Annotations, layers)
	if len(types) == 0 && h.Subject != nil {
		at := h.ArtifactType
		if at == "" && h.Config != nil {
			at = h.Config.MediaType
		}
		if at != "" {
			types = []string{at}
		}
	}
	return types
}

// carriesLifecycle reports whether man holds a lifecycle event or
// approval.
func carriesLifecycle(ctx context.Context, blobs blobReader, man distribution.Manifest) bool {
	layers, _ := layersOf(man)
	return anyLifecycle(layerTypes(ctx, blobs, headOf(man).Annotations, layers))
}

// added returns the layers of next that prev (nil: none) lacks, counting
// repeats as dropped does.
func added(prev, next distribution.Manifest) []v1.Descriptor {
	nextLayers, _ := layersOf(next)
	if prev == nil {
		return nextLayers
	}
	have := map[string]int{}
	prevLayers, _ := layersOf(prev)
	for _, l := range prevLayers {
		have[entryKey(l)]++
	}
	var out []v1.Descriptor
	for _, l := range nextLayers {
		if k := entryKey(l); have[k] > 0 {
			have[k]--
			continue
		}
		out = append(out, l)
	}
	return out
}

// attSubject returns the subject a cosign attestation tag
// (sha256-<hex>.att, in any case) names.
func attSubject(tag string) (digest.Digest, bool) {
	lower := strings.ToLower(tag)
	base, ok := strings.CutSuffix(lower, ".att")
	if !ok {
		return "", false
	}
	alg, hex, ok := strings.Cut(base, "-")
	if !ok {
		return "", false
	}
	d := digest.NewDigestFromEncoded(digest.Algorithm(alg), hex)
	return d, d.Validate() == nil
}

// attTag is the cosign attestation tag of subject.
func attTag(subject digest.Digest) string {
	return subject.Algorithm().String() + "-" + subject.Encoded() + ".att"
}

// lifecycleIndex records, per repository, the versions that carry
// lifecycle events or approvals, in the registry's storage beside the
// referrers index:
//
//	/ociwf/v2/lifecycle/<repository>/_subjects/<alg>-<hex>
//
// An entry is written when such an attestation is stored and never
// removed: what it names is protected for good.
type lifecycleIndex struct {
	d storagedriver.StorageDriver
}

const lifecycleRoot = "/ociwf/v2/lifecycle"

func (x lifecycleIndex) dir(repo string) string {
	return path.Join(lifecycleRoot, repo, subjectsDir)
}

// mark records that subject, in repo, carries lifecycle attestations,
// the first of them by, a manifest digest.
func (x lifecycleIndex) mark(ctx context.Context, repo string, subject, by digest.Digest) error {
	p := path.Join(x.dir(repo), entryName(subject))
	if _, err := x.d.Stat(ctx, p); err == nil {
		return nil
	}
	return x.d.PutContent(ctx, p, []byte(by.String()))
}

// subjects returns the versions of repo recorded as carrying lifecycle
// attestations.
func (x lifecycleIndex) subjects(ctx context.Context, repo string) ([]digest.Digest, error) {
	files, err := x.d.List(ctx, x.dir(repo))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	out := make([]digest.Digest, 0, len(files))
	for _, f := range files {
		if d, ok := parseEntryName(path.Base(f)); ok {
			out = append(out, d)
		}
	}
	return out, nil
}
