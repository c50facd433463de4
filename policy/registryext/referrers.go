package registryext

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"path"
	"slices"

	"github.com/distribution/distribution/v3/registry/auth"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// referrers indexes manifests by their subject, in the registry's storage
// next to Distribution's own data, for the OCI 1.1 referrers API that
// Distribution 3.1.2 lacks. One small file per (subject, referrer) holds
// the referrer's descriptor, so concurrent pushes never rewrite a shared
// file.
type referrers struct {
	d storagedriver.StorageDriver
}

// referrersRoot is where the index lives in the storage driver.
const referrersRoot = "/ociwf/v1/referrers"

func (x *referrers) dir(repo string, subject digest.Digest) string {
	return path.Join(referrersRoot, repo, subject.Algorithm().String(), subject.Encoded())
}

func (x *referrers) file(repo string, subject, referrer digest.Digest) string {
	return path.Join(x.dir(repo, subject), referrer.Algorithm().String()+"-"+referrer.Encoded())
}

// manifestHead is the part of a manifest or index the referrers API needs.
type manifestHead struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Config       *v1.Descriptor    `json:"config"`
	Subject      *v1.Descriptor    `json:"subject"`
	Annotations  map[string]string `json:"annotations"`
}

// subjectOf decodes a manifest's subject and its descriptor as a referrer.
func subjectOf(mediaType string, payload []byte) (*v1.Descriptor, v1.Descriptor, bool) {
	var h manifestHead
	if json.Unmarshal(payload, &h) != nil || h.Subject == nil || h.Subject.Digest.Validate() != nil {
		return nil, v1.Descriptor{}, false
	}
	if h.MediaType != "" {
		mediaType = h.MediaType
	}
	desc := v1.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(payload), Size: int64(len(payload)), ArtifactType: h.ArtifactType, Annotations: h.Annotations}
	if desc.ArtifactType == "" && h.Config != nil {
		desc.ArtifactType = h.Config.MediaType
	}
	return h.Subject, desc, true
}

func (x *referrers) add(ctx context.Context, repo string, subject digest.Digest, desc v1.Descriptor) error {
	b, err := json.Marshal(desc)
	if err != nil {
		return err
	}
	return x.d.PutContent(ctx, x.file(repo, subject, desc.Digest), b)
}

func (x *referrers) remove(ctx context.Context, repo string, subject, referrer digest.Digest) error {
	err := x.d.Delete(ctx, x.file(repo, subject, referrer))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil
	}
	return err
}

func (x *referrers) list(ctx context.Context, repo string, subject digest.Digest) ([]v1.Descriptor, error) {
	files, err := x.d.List(ctx, x.dir(repo, subject))
	var nf storagedriver.PathNotFoundError
	if errors.As(err, &nf) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	slices.Sort(files)
	out := make([]v1.Descriptor, 0, len(files))
	for _, f := range files {
		b, err := x.d.GetContent(ctx, f)
		if errors.As(err, &nf) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		var d v1.Descriptor
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, fmt.Errorf("referrers index %s: %w", f, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// ociError writes an OCI error response.
func ociError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
	_, _ = w.Write(b)
}

// serveReferrers answers GET /v2/NAME/referrers/DIGEST[?artifactType=T]
// with an image index of the manifests whose subject is DIGEST, after the
// same access check Distribution makes for a pull.
func (s *Server) serveReferrers(w http.ResponseWriter, r *http.Request, rt route) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		ociError(w, http.StatusMethodNotAllowed, "UNSUPPORTED", "the referrers API is read-only")
		return
	}
	if s.access != nil {
		_, err := s.access.Authorized(r, auth.Access{Resource: auth.Resource{Type: "repository", Name: rt.repo}, Action: "pull"})
		if err != nil {
			var ch auth.Challenge
			if errors.As(err, &ch) {
				ch.SetHeaders(r, w)
			}
			ociError(w, http.StatusUnauthorized, "UNAUTHORIZED", "authentication required")
			return
		}
	}
	subject := digest.Digest(rt.ref)
	if err := subject.Validate(); err != nil {
		ociError(w, http.StatusBadRequest, "DIGEST_INVALID", fmt.Sprintf("invalid digest %q: %v", rt.ref, err))
		return
	}
	descs, err := s.referrers.list(r.Context(), rt.repo, subject)
	if err != nil {
		s.log.Error("referrers", "repository", rt.repo, "subject", subject.String(), "err", err)
		ociError(w, http.StatusInternalServerError, "UNKNOWN", "reading the referrers index failed")
		return
	}
	if at := r.URL.Query().Get("artifactType"); at != "" {
		descs = slices.DeleteFunc(descs, func(d v1.Descriptor) bool { return d.ArtifactType != at })
		w.Header().Set("OCI-Filters-Applied", "artifactType")
	}
	idx := v1.Index{MediaType: v1.MediaTypeImageIndex, Manifests: descs}
	idx.SchemaVersion = 2
	if idx.Manifests == nil {
		idx.Manifests = []v1.Descriptor{}
	}
	b, err := json.Marshal(idx)
	if err != nil {
		ociError(w, http.StatusInternalServerError, "UNKNOWN", err.Error())
		return
	}
	w.Header().Set("Content-Type", v1.MediaTypeImageIndex)
	w.Header().Set("Content-Length", fmt.Sprint(len(b)))
	w.WriteHeader(http.StatusOK)
	s.metrics.referrers.Inc()
	if r.Method == http.MethodGet {
		_, _ = w.Write(b)
	}
}
