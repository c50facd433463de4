package registryext_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// Blobs served from memory (small) and by Distribution (large) answer
// GET, HEAD, Range and If-None-Match alike.
func TestServeBlobs(t *testing.T) {
	host := registrytest.New(t)
	repo, err := remote.NewRepository(host + "/blobs/test")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	ctx := context.Background()
	for _, size := range []int{0, 1, 4096, registryext.SmallBlobBytes, registryext.SmallBlobBytes + 1} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			data := make([]byte, size)
			rand.Read(data)
			desc := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(data), Size: int64(size)}
			if err := repo.Push(ctx, desc, bytes.NewReader(data)); err != nil {
				t.Fatal(err)
			}
			url := "http://" + host + "/v2/blobs/test/blobs/" + desc.Digest.String()
			get := func(method string, hdr ...string) (*http.Response, []byte) {
				t.Helper()
				req, _ := http.NewRequest(method, url, nil)
				for i := 0; i < len(hdr); i += 2 {
					req.Header.Set(hdr[i], hdr[i+1])
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				return resp, b
			}
			resp, body := get(http.MethodGet)
			if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Docker-Content-Digest") != desc.Digest.String() ||
				resp.Header.Get("Content-Length") != strconv.Itoa(size) || resp.Header.Get("ETag") != `"`+desc.Digest.String()+`"` {
				t.Fatalf("GET: %d, %d bytes, headers %v", resp.StatusCode, len(body), resp.Header)
			}
			resp, body = get(http.MethodHead)
			if resp.StatusCode != 200 || len(body) != 0 || resp.Header.Get("Content-Length") != strconv.Itoa(size) {
				t.Fatalf("HEAD: %d, headers %v", resp.StatusCode, resp.Header)
			}
			resp, _ = get(http.MethodGet, "If-None-Match", `"`+desc.Digest.String()+`"`)
			if resp.StatusCode != http.StatusNotModified {
				t.Fatalf("If-None-Match: %d", resp.StatusCode)
			}
			if size > 2 {
				resp, body = get(http.MethodGet, "Range", "bytes=1-2")
				if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[1:3]) {
					t.Fatalf("Range: %d %x", resp.StatusCode, body)
				}
			}
		})
	}
	// A blob of another repository is not served through this one.
	other := []byte("elsewhere")
	od := ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.FromBytes(other), Size: int64(len(other))}
	orepo, _ := remote.NewRepository(host + "/blobs/other")
	orepo.PlainHTTP = true
	if err := orepo.Push(ctx, od, bytes.NewReader(other)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get("http://" + host + "/v2/blobs/test/blobs/" + od.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("blob of another repository: %d", resp.StatusCode)
	}
}
