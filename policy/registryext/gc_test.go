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

// A registry killed while it tagged leaves the tag's directory with the
// index entry of the manifest it was tagging and no current link (at
// most a temporary file where the link was being created). The tag does
// not exist, and gc runs: it keeps what the tags that do exist keep, and
// takes the half-tagged manifest for what it is, untagged.
func TestGarbageCollectTagKilledMidWrite(t *testing.T) {
	root := filepath.Join(t.TempDir(), "root")
	c, stop := serveUntilStopped(t, root, "workflows/killed")
	kept := c.manifest("kept layer")
	expect(t, "protected tag", c.put("1.0.0", kept), http.StatusCreated, "")
	half := c.manifest("half-tagged layer")
	expect(t, "the manifest being tagged", c.put(digest.FromBytes(half).String(), half), http.StatusCreated, "")
	stop()
	dg := digest.FromBytes(half)
	tag := filepath.Join(root, "docker/registry/v2/repositories/workflows/killed/_manifests/tags/1.0.1")
	for name, content := range map[string]string{
		"index/sha256/" + dg.Encoded() + "/link":            dg.String(),
		"current/link.0123456789abcdef0123456789abcdef.tmp": dg.String(),
	} {
		p := filepath.Join(tag, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	ctx := context.Background()
	got, err := registryext.GarbageCollect(ctx, registryext.Config{Root: root}, registryext.GCOptions{DeleteUntagged: true})
	if err != nil {
		t.Fatalf("gc after a registry was killed tagging 1.0.1: %v", err)
	}
	if got.ManifestsDeleted != 1 || got.ManifestsKept != 1 || got.ManifestsProtected != 1 {
		t.Fatalf("gc: %+v, want the half-tagged manifest deleted and 1.0.0 kept", *got)
	}
	c, _ = serveUntilStopped(t, root, "workflows/killed")
	expect(t, "1.0.0 after gc", c.do(http.MethodGet, "/manifests/1.0.0", nil), http.StatusOK, "")
	expect(t, "the half-tagged manifest after gc", c.do(http.MethodGet, "/manifests/"+dg.String(), nil), http.StatusNotFound, "")
	expect(t, "1.0.1 created after gc", c.put("1.0.1", c.manifest("new layer")), http.StatusCreated, "")
}
