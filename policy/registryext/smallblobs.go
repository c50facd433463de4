package registryext

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
)

// SmallBlobBytes is the size up to which the middleware serves a blob from
// memory. Distribution reads every blob it serves through a 4 MiB buffer;
// workflow blobs, signatures and attestations are a few KiB, and
// allocating (and collecting) 4 MiB for each dominated the registry's CPU.
const SmallBlobBytes = 1 << 20

// blobMaxAge is Distribution's Cache-Control for blobs, which are
// content-addressed.
const blobMaxAge = 365 * 24 * time.Hour

// ServeBlob serves small blobs from memory; HEAD requests and large blobs
// go to Distribution as before.
func (b *blobs) ServeBlob(ctx context.Context, w http.ResponseWriter, r *http.Request, dgst digest.Digest) error {
	if r.Method != http.MethodGet {
		return b.BlobStore.ServeBlob(ctx, w, r, dgst)
	}
	desc, err := b.Stat(ctx, dgst)
	if err != nil {
		return err
	}
	if desc.Size > SmallBlobBytes {
		return b.BlobStore.ServeBlob(ctx, w, r, dgst)
	}
	p, err := b.Get(ctx, dgst)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("ETag", fmt.Sprintf(`"%s"`, desc.Digest))
	h.Set("Cache-Control", fmt.Sprintf("max-age=%.f", blobMaxAge.Seconds()))
	if h.Get("Docker-Content-Digest") == "" {
		h.Set("Docker-Content-Digest", desc.Digest.String())
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", desc.MediaType)
	}
	// ServeContent sets Content-Length and answers Range and If-None-Match.
	http.ServeContent(w, r, desc.Digest.String(), time.Time{}, bytes.NewReader(p))
	return nil
}
