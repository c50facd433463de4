package registryext_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// writeFile writes b at path under root, creating directories.
func writeFile(t *testing.T, root, path string, b []byte) {
	t.Helper()
	p := filepath.Join(root, filepath.FromSlash(path))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// entryName is the index file name of a referrer.
func entryName(m []byte) string {
	d := digest.FromBytes(m)
	return d.Algorithm().String() + "-" + d.Encoded()
}

// An index written at the first layout (ociwf/v1/referrers/<repo>/<alg>/<hex>/)
// is carried over when the registry starts: each entry is checked against
// the stored manifest, and what does not check out is dropped.
func TestReferrersLegacyIndexMigrated(t *testing.T) {
	root := t.TempDir()
	srv, stop := serveAt(t, root)
	c := newClient(t, srv.Addr(), "workflows/old")
	subject := c.tagged("1.0.0", "subject")
	other := c.tagged("other", "other")
	sig := c.referrer(subject, "application/vnd.example.sig", "sig")
	att := c.referrer(subject, "application/vnd.example.att", "att")
	elsewhere := c.referrer(other, "application/vnd.example.sig", "elsewhere")
	for _, m := range [][]byte{sig, att, elsewhere} {
		c.pushReferrer("referrer", m)
	}
	stop()

	// Replace the index with one at the first layout, as an older ociwf
	// wrote it, with entries that must not survive.
	if err := os.RemoveAll(filepath.Join(root, "ociwf")); err != nil {
		t.Fatal(err)
	}
	legacy := "ociwf/v1/referrers/workflows/old/sha256/" + hexOf(subject) + "/"
	descOf := func(m []byte, artifactType string) []byte {
		b, _ := json.Marshal(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(m), Size: int64(len(m)), ArtifactType: artifactType})
		return b
	}
	writeFile(t, root, legacy+entryName(sig), descOf(sig, "application/vnd.example.sig"))
	writeFile(t, root, legacy+entryName(att), []byte("not a descriptor"))   // rebuilt from the manifest
	writeFile(t, root, legacy+entryName(elsewhere), descOf(elsewhere, "x")) // its subject is another manifest
	writeFile(t, root, legacy+entryName(other), descOf(other, "x"))         // no subject at all
	ghost := []byte("never pushed")
	writeFile(t, root, legacy+entryName(ghost), descOf(ghost, "x")) // not in the repository
	writeFile(t, root, legacy+"sha256/"+hexOf(ghost)+"/"+entryName(ghost), descOf(ghost, "x"))
	writeFile(t, root, "ociwf/v1/referrers/workflows/old/sha256/"+hexOf(other)+"/"+entryName(elsewhere), descOf(elsewhere, "application/vnd.example.sig"))

	srv, _ = serveAt(t, root)
	c = newClient(t, srv.Addr(), "workflows/old")
	resp, idx := c.referrers(subject, "")
	var got []digest.Digest
	for _, d := range idx.Manifests {
		got = append(got, d.Digest)
		if d.ArtifactType == "" || d.ArtifactType == "x" || d.MediaType != ocispec.MediaTypeImageManifest {
			t.Fatalf("descriptor %+v", d)
		}
	}
	if resp.StatusCode != http.StatusOK || !slices.Equal(got, sortedDigests(sig, att)) {
		t.Fatalf("referrers after the upgrade: %d %v", resp.StatusCode, got)
	}
	if _, idx := c.referrers(other, ""); len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(elsewhere) {
		t.Fatalf("referrers of other: %+v", idx.Manifests)
	}
	// Delete protection reads the carried-over index too.
	expect(t, "delete a referrer of 1.0.0", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(att).String(), nil), http.StatusForbidden, "tag 1.0.0")
	if _, err := os.Stat(filepath.Join(root, "ociwf", "v1", "referrers")); !os.IsNotExist(err) {
		t.Fatalf("the first layout is still there: %v", err)
	}
}

// indexDir is where the index keeps the referrers of subject in repo.
func indexDir(repo string, subject []byte) string {
	return "ociwf/v2/referrers/" + repo + "/_subjects/sha256/" + hexOf(subject) + "/"
}

// Index entries are checked when read: one that does not decode as the
// descriptor its name says is left out and the rest are listed.
func TestReferrersBadEntriesSkipped(t *testing.T) {
	root := t.TempDir()
	srv, _ := serveAt(t, root)
	c := newClient(t, srv.Addr(), "workflows/bad")
	subject := c.tagged("1.0.0", "subject")
	sig := c.pushReferrers(subject, "application/vnd.example.sig", "sig", 1, 10)[0]

	dir := indexDir("workflows/bad", subject)
	a, b := []byte("a"), []byte("b")
	writeFile(t, root, dir+entryName(a), []byte("{not json"))
	wrong, _ := json.Marshal(ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(sig), Size: int64(len(sig))})
	writeFile(t, root, dir+entryName(b), wrong) // names another digest
	writeFile(t, root, dir+"sha256-nothex", wrong)
	writeFile(t, root, dir+entryName([]byte("c"))+"/x", wrong) // a directory

	resp, idx := c.referrers(subject, "")
	if resp.StatusCode != http.StatusOK || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sig) {
		t.Fatalf("referrers: %d %+v", resp.StatusCode, idx.Manifests)
	}
}
