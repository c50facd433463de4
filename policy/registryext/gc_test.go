package registryext_test

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/registryext"
)

// serveUntilStopped starts a registry on root and returns a client of
// repo and the function that stops the registry.
func serveUntilStopped(t *testing.T, root, repo string) (*client, func()) {
	t.Helper()
	srv, stop := serveAt(t, root)
	return newClient(t, srv.Addr(), repo), stop
}

// The garbage collector keeps what the rules protect: a protected tag,
// its OCI 1.1 referrer and cosign signature tag, and their blobs; it
// deletes an untagged, unprotected manifest (with its referrer, and that
// referrer's index entry) and unreferenced blobs.
func TestGarbageCollectKeepsProtected(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	c, stop := serveUntilStopped(t, root, "workflows/gc")
	subject := c.manifest("subject layer")
	expect(t, "protected tag", c.put("1.0.0", subject), http.StatusCreated, "")
	ref := c.referrer(subject, "application/vnd.in-toto+json", "referrer layer")
	expect(t, "its referrer", c.put(digest.FromBytes(ref).String(), ref), http.StatusCreated, "")
	sig := "sha256-" + digest.FromBytes(subject).Encoded() + ".sig"
	expect(t, "its signature", c.put(sig, c.accessory(nil, signature("signature payload", "alice"))), http.StatusCreated, "")
	loose := c.manifest("loose layer")
	expect(t, "an untagged manifest", c.put(digest.FromBytes(loose).String(), loose), http.StatusCreated, "")
	note := c.referrer(loose, "application/vnd.example.note", "note layer")
	expect(t, "its referrer", c.put(digest.FromBytes(note).String(), note), http.StatusCreated, "")
	c.blob("orphan")
	stop()

	cfg := registryext.Config{Root: root}
	ctx := context.Background()
	want := registryext.GCResult{ManifestsDeleted: 2, ManifestsKept: 3, ManifestsProtected: 3, BlobsDeleted: 5}
	for _, dry := range []bool{true, false} {
		got, err := registryext.GarbageCollect(ctx, cfg, registryext.GCOptions{DryRun: dry, DeleteUntagged: true})
		if err != nil {
			t.Fatal(err)
		}
		want.DryRun, want.BlobsKept = dry, got.BlobsKept
		if *got != want || got.BlobsKept == 0 {
			t.Fatalf("dry run %v: %+v, want %+v", dry, *got, want)
		}
	}

	c, _ = serveUntilStopped(t, root, "workflows/gc")
	for _, p := range []string{
		"/manifests/1.0.0", "/manifests/" + digest.FromBytes(ref).String(), "/manifests/" + sig,
		"/blobs/" + digest.FromString("subject layer").String(), "/blobs/" + digest.FromString("referrer layer").String(),
		"/blobs/" + digest.FromString("signature payload").String(), "/blobs/" + digest.FromString("{}").String(),
	} {
		expect(t, "kept "+p, c.do(http.MethodGet, p, nil), http.StatusOK, "")
	}
	for _, p := range []string{
		"/manifests/" + digest.FromBytes(loose).String(), "/manifests/" + digest.FromBytes(note).String(),
		"/blobs/" + digest.FromString("loose layer").String(), "/blobs/" + digest.FromString("note layer").String(),
		"/blobs/" + digest.FromString("orphan").String(),
	} {
		expect(t, "deleted "+p, c.do(http.MethodGet, p, nil), http.StatusNotFound, "")
	}
	if _, idx := c.referrers(subject, ""); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(ref) {
		t.Fatalf("referrers of 1.0.0 after gc: %+v", idx)
	}
	if _, idx := c.referrers(loose, ""); len(idx.Manifests) != 0 {
		t.Fatalf("referrers of the deleted manifest after gc: %+v", idx)
	}
}

// A root that is not there is named as such, not as a storage path deep
// inside the mark phase.
func TestGarbageCollectMissingRoot(t *testing.T) {
	root := filepath.Join(t.TempDir(), "typo")
	_, err := registryext.GarbageCollect(context.Background(), registryext.Config{Root: root}, registryext.GCOptions{DeleteUntagged: true})
	if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "no registry storage at "+root) {
		t.Fatalf("gc of a missing root: %v; want ErrInvalid naming %s", err, root)
	}
	if _, serr := os.Stat(root); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("gc created %s (%v)", root, serr)
	}
}
