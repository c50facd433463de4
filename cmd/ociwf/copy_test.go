package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"oras.land/oras-go/v2/registry"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// copied is what ociwf copy --output json prints.
type copied struct {
	Versions []struct {
		Digest string
		Tag    string
		Merged []string
	}
	Failed          map[string]string
	Manifests       int
	Blobs           int
	Bytes           int64
	Skipped         int
	Accessories     map[string]int
	LifecycleEvents int
	Verified        bool
	Error           string
	ExitCode        int
}

// copyJSON runs ociwf copy --output json with args.
func copyJSON(t *testing.T, args ...string) (copied, string, int) {
	t.Helper()
	out, stderr, code := runCLI(t, append([]string{"copy", "--plain-http", "--output", "json"}, args...)...)
	var c copied
	if err := json.Unmarshal([]byte(out), &c); err != nil {
		t.Fatalf("copy %v: exit %d, output is not one JSON document (%v)\n%s%s", args, code, err, out, stderr)
	}
	if c.ExitCode != code {
		t.Fatalf("copy %v: exit %d, JSON says %d", args, code, c.ExitCode)
	}
	return c, stderr, code
}

// published is a version with every kind of accessory: ociwf publish's
// signature and attestations (provenance, SBOM, the published event) under
// cosign's tags, a signature as an OCI 1.1 referrer, one as a sigstore
// bundle, and a deprecation event.
type published struct {
	keys, repo, ref string
	chain           []string // the lifecycle chain's event IDs
}

func publishAll(t *testing.T, host string) published {
	t.Helper()
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	repo := host + "/team/build"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", repo); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	ref := repo + ":1.4.0"
	for _, extra := range [][]string{{"--referrers"}, {"--signature-format", "bundle"}} {
		if _, stderr, code := runCLI(t, append([]string{"sign", "--plain-http", "--key", keys + ".key", ref}, extra...)...); code != 0 {
			t.Fatalf("sign %v: %s", extra, stderr)
		}
	}
	if out, stderr, code := runCLI(t, "lifecycle", "deprecate", "--plain-http", "--key", keys+".key", ref, "--reason", "use 2.0"); code != 0 {
		t.Fatalf("deprecate: exit %d\n%s%s", code, out, stderr)
	}
	return published{keys: keys, repo: repo, ref: ref, chain: chainOf(t, keys, repo, ref)}
}

// chainOf reads the state and lifecycle chain of ref, verified with the
// signatures naming signedAs, and requires state deprecated.
func chainOf(t *testing.T, keys, signedAs, ref string) []string {
	t.Helper()
	out, stderr, code := runCLI(t, "status", "--plain-http", "--key", keys+".pub", "--signed-identity", signedAs, "--output", "json", ref)
	var st struct {
		State string
		Chain []struct{ ID string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != "deprecated" {
		t.Fatalf("status %s: exit %d, want deprecated\n%s%s", ref, code, out, stderr)
	}
	var ids []string
	for _, l := range st.Chain {
		ids = append(ids, l.ID)
	}
	if len(ids) < 2 {
		t.Fatalf("status %s: chain %v, want published and deprecated", ref, ids)
	}
	return ids
}

// wantMirror checks that ref verifies as a mirror of p, in the same
// lifecycle state with the same chain.
func (p published) wantMirror(t *testing.T, ref string) {
	t.Helper()
	if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", p.keys+".pub", "--signed-identity", p.repo, ref); code != 0 || !strings.Contains(stderr, "deprecated") {
		t.Fatalf("verify the mirror %s: exit %d\n%s", ref, code, stderr)
	}
	if got := chainOf(t, p.keys, p.repo, ref); !slices.Equal(got, p.chain) {
		t.Fatalf("mirror %s: chain %v, the source's %v", ref, got, p.chain)
	}
}

func TestCopyRegistryToRegistryAndBack(t *testing.T) {
	p := publishAll(t, registrytest.New(t))
	plain := registrytest.StartPlain(t, t.TempDir())
	mirror := plain + "/mirror/build"
	trust := []string{"--key", p.keys + ".pub", "--signed-identity", p.repo}

	c, stderr, code := copyJSON(t, append(trust, p.ref, mirror)...)
	if code != 0 || !c.Verified || c.Manifests == 0 || c.Blobs == 0 {
		t.Fatalf("copy: exit %d %+v\n%s", code, c, stderr)
	}
	// publish: 1 signature, 3 attestations under the tags; a referrer
	// signature; a bundle; the deprecation event in .att.
	if c.Accessories["signature"] != 2 || c.Accessories["bundle"] != 1 || c.Accessories["attestation"] != 4 || c.LifecycleEvents != 2 {
		t.Fatalf("copy: accessories %v, %d lifecycle events", c.Accessories, c.LifecycleEvents)
	}
	p.wantMirror(t, mirror+":1.4.0")

	// A rerun writes nothing.
	again, stderr, code := copyJSON(t, append(trust, p.ref, mirror)...)
	if code != 0 || again.Manifests != 0 || again.Blobs != 0 || again.Bytes != 0 || len(again.Versions[0].Merged) != 0 || !again.Verified {
		t.Fatalf("rerun: exit %d %+v\n%s", code, again, stderr)
	}

	// Back onto an ociwf registry, from the stock one.
	back := registrytest.New(t) + "/back/build"
	if c, stderr, code := copyJSON(t, append(trust, mirror+":1.4.0", back)...); code != 0 || !c.Verified {
		t.Fatalf("copy back: exit %d %+v\n%s", code, c, stderr)
	}
	p.wantMirror(t, back+":1.4.0")

	// Without --signed-identity the mirror's signatures name another
	// repository: verification at the destination fails.
	other := plain + "/other/build"
	if c, _, code := copyJSON(t, "--key", p.keys+".pub", p.ref, other); code != cli.ExitVerification || c.Verified || !strings.Contains(c.Error, p.repo) {
		t.Fatalf("copy without --signed-identity: exit %d %+v", code, c)
	}
	// A registry destination needs a trust policy, or --no-verify.
	if _, _, code := copyJSON(t, p.ref, other); code != cli.ExitUsage {
		t.Fatalf("copy without --key: exit %d", code)
	}
	if c, _, code := copyJSON(t, "--no-verify", p.ref, other); code != 0 || c.Verified {
		t.Fatalf("copy --no-verify: exit %d %+v", code, c)
	}
}

func TestCopyRoundTripThroughLayoutAndTar(t *testing.T) {
	p := publishAll(t, registrytest.New(t))
	dir := t.TempDir()
	layout, archive, unpacked := filepath.Join(dir, "layout"), filepath.Join(dir, "build.tar"), filepath.Join(dir, "unpacked")
	for _, hop := range [][2]string{
		{p.ref, "oci:" + layout},
		{"oci:" + layout + ":1.4.0", "tar:" + archive},
		{"tar:" + archive + ":1.4.0", "oci:" + unpacked},
	} {
		c, stderr, code := copyJSON(t, hop[0], hop[1])
		if code != 0 || c.Verified || c.Accessories["signature"] != 2 || c.Accessories["bundle"] != 1 || c.LifecycleEvents != 2 {
			t.Fatalf("copy %s %s: exit %d %+v\n%s", hop[0], hop[1], code, c, stderr)
		}
	}
	if _, err := os.Stat(archive); err != nil {
		t.Fatal(err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, ".build.tar.*")); len(m) != 0 {
		t.Fatalf("staging left behind: %v", m)
	}
	// Copying into the archive again keeps it as it is.
	before, _ := os.ReadFile(archive)
	if c, stderr, code := copyJSON(t, "oci:"+layout+":1.4.0", "tar:"+archive); code != 0 || c.Manifests != 0 || c.Blobs != 0 {
		t.Fatalf("copy into the archive again: exit %d %+v\n%s", code, c, stderr)
	}
	if after, _ := os.ReadFile(archive); string(after) != string(before) {
		t.Fatal("copying what an archive holds rewrote it differently")
	}

	back := registrytest.StartPlain(t, t.TempDir()) + "/restored/build"
	if c, stderr, code := copyJSON(t, "--key", p.keys+".pub", "--signed-identity", p.repo, "oci:"+unpacked+":1.4.0", back); code != 0 || !c.Verified {
		t.Fatalf("copy back to a registry: exit %d %+v\n%s", code, c, stderr)
	}
	p.wantMirror(t, back+":1.4.0")
}

// dropping is a reverse proxy in front of a registry that answers 404 to
// the requests drop matches, and counts them.
func dropping(t *testing.T, host string, drop func(*http.Request) bool) (string, *atomic.Int64) {
	t.Helper()
	u, _ := url.Parse("http://" + host)
	rp := httputil.NewSingleHostReverseProxy(u)
	n := new(atomic.Int64)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if drop(r) {
			n.Add(1)
			http.Error(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"dropped in transit"}]}`, http.StatusNotFound)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), n
}

func TestCopyFailsLoudlyWhenAnAccessoryIsDropped(t *testing.T) {
	host := registrytest.New(t)
	p := publishAll(t, host)
	src := repository(t, p.repo)
	desc, err := src.Resolve(context.Background(), "1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	dgst := desc.Digest
	trust := []string{"--key", p.keys + ".pub", "--signed-identity", p.repo}
	plain := registrytest.StartPlain(t, t.TempDir())

	// The .att tag, holding the provenance, the SBOM attestation and the
	// lifecycle events, is hidden.
	att := "/manifests/" + "sha256-" + dgst.Encoded() + ".att"
	proxy, n := dropping(t, host, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, att) })
	c, stderr, code := copyJSON(t, append(trust, proxy+"/team/build:1.4.0", plain+"/att/build")...)
	if code != cli.ExitVerification || c.Verified || n.Load() == 0 || !strings.Contains(c.Error, "attestation") {
		t.Fatalf("copy without .att: exit %d (%d dropped) %+v\n%s", code, n.Load(), c, stderr)
	}

	// One referrer's manifest is missing.
	refs, err := registry.Referrers(context.Background(), src, desc, "")
	if err != nil || len(refs) == 0 {
		t.Fatalf("referrers: %v %v", refs, err)
	}
	gone := refs[0].Digest.String()
	proxy, n = dropping(t, host, func(r *http.Request) bool { return strings.HasSuffix(r.URL.Path, "/manifests/"+gone) })
	c, stderr, code = copyJSON(t, append(trust, proxy+"/team/build:1.4.0", plain+"/ref/build")...)
	if code == 0 || c.Verified || n.Load() == 0 || !strings.Contains(c.Error, gone) {
		t.Fatalf("copy without referrer %s: exit %d (%d dropped) %+v\n%s", gone, code, n.Load(), c, stderr)
	}
	// The version tag is written last: the failed copy left none.
	if _, _, code := runCLI(t, "inspect", "--plain-http", plain+"/ref/build:1.4.0"); code == 0 {
		t.Fatal("a failed copy tagged the version")
	}
	// Run again without the fault, the copy resumes: what the failed one
	// wrote is skipped.
	c, stderr, code = copyJSON(t, append(trust, p.ref, plain+"/ref/build")...)
	if code != 0 || !c.Verified || c.Skipped == 0 || c.Manifests == 0 {
		t.Fatalf("resumed copy: exit %d %+v\n%s", code, c, stderr)
	}
	p.wantMirror(t, plain+"/ref/build:1.4.0")
	if _, stderr, code := runCLI(t, "inspect", "--plain-http", plain+"/ref/build:1.4.0"); code != 0 {
		t.Fatalf("inspect the resumed copy: exit %d %s", code, stderr)
	}
}

func TestCopyMergesOntoAppendOnlyAccessories(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	src := registrytest.StartPlain(t, t.TempDir()) + "/team/build"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", src); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	dst := registrytest.New(t) + "/mirror/build"
	trust := []string{"--key", keys + ".pub", "--signed-identity", src}
	if c, stderr, code := copyJSON(t, append(trust, src+":1.4.0", dst)...); code != 0 || !c.Verified {
		t.Fatalf("copy: exit %d %+v\n%s", code, c, stderr)
	}
	// The mirror is signed where it is, the source again by another key.
	mirrorKey, sourceKey := filepath.Join(t.TempDir(), "mirror"), filepath.Join(t.TempDir(), "second")
	for _, k := range []string{mirrorKey, sourceKey} {
		if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", k); code != 0 {
			t.Fatal(stderr)
		}
	}
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", mirrorKey+".key", dst+":1.4.0"); code != 0 {
		t.Fatalf("sign the mirror: %s", stderr)
	}
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", sourceKey+".key", src+":1.4.0"); code != 0 {
		t.Fatalf("sign the source: %s", stderr)
	}
	c, stderr, code := copyJSON(t, append(trust, src+":1.4.0", dst)...)
	if code != 0 || !c.Verified || len(c.Versions) != 1 || len(c.Versions[0].Merged) != 1 || !strings.HasSuffix(c.Versions[0].Merged[0], ".sig") || c.Accessories["signature"] != 3 {
		t.Fatalf("copy onto the signed mirror: exit %d %+v\n%s", code, c, stderr)
	}
	// Every signature is there: the source's two and the mirror's own.
	for _, v := range [][]string{
		{"--key", keys + ".pub", "--signed-identity", src},
		{"--key", sourceKey + ".pub", "--signed-identity", src},
		{"--key", mirrorKey + ".pub"},
	} {
		if _, stderr, code := runCLI(t, append([]string{"verify", "--plain-http", "--signature-only", dst + ":1.4.0"}, v...)...); code != 0 {
			t.Fatalf("verify %v at the mirror: exit %d\n%s", v, code, stderr)
		}
	}
	// A rerun finds nothing to merge.
	if c, stderr, code := copyJSON(t, append(trust, src+":1.4.0", dst)...); code != 0 || c.Manifests != 0 || len(c.Versions[0].Merged) != 0 {
		t.Fatalf("rerun: exit %d %+v\n%s", code, c, stderr)
	}
}

func TestCopyVersionTagIsWriteOnce(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	host := registrytest.StartPlain(t, t.TempDir())
	src, dst := host+"/team/build", host+"/mirror/build"
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", src); code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", samples+"fan-out-fan-in.yaml", dst+":1.4.0"); code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	c, _, code := copyJSON(t, "--key", keys+".pub", "--signed-identity", src, src+":1.4.0", dst)
	if code != cli.ExitImmutable || !strings.Contains(c.Error, "1.4.0") || c.Manifests != 0 || c.Blobs != 0 {
		t.Fatalf("copy over another version's tag: exit %d %+v", code, c)
	}
	other := "sha256:" + strings.Repeat("0", 64)
	if c, _, code := copyJSON(t, "--no-verify", src+":1.4.0", host+"/third/build@"+other); code != cli.ExitUsage || !strings.Contains(c.Error, other) {
		t.Fatalf("copy to another digest: exit %d %+v", code, c)
	}
	if d := resolve(t, repository(t, host+"/third/build"), resolve(t, repository(t, src), "1.4.0").String()); d != "" {
		t.Fatalf("a refused copy wrote %s", d)
	}
	// Trust flags that do not go together are refused before anything
	// is written.
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte("version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: all\n    registryScopes: [\"*\"]\n    signers: [{name: ci, key: "+keys+".pub}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if c, _, code := copyJSON(t, "--policy", pol, "--signed-identity", src, src+":1.4.0", host+"/fourth/build"); code != cli.ExitUsage || c.Manifests != 0 {
		t.Fatalf("copy --policy --signed-identity: exit %d %+v", code, c)
	}
	if d := resolve(t, repository(t, host+"/fourth/build"), "1.4.0").String(); d != "" {
		t.Fatalf("a copy refused for its flags wrote and tagged %s", d)
	}
}

func TestCopyAll(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	src := registrytest.New(t) + "/team/build"
	for _, tag := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", src+":"+tag); code != 0 {
			t.Fatalf("publish %s: %s", tag, stderr)
		}
	}
	archive := filepath.Join(t.TempDir(), "all.tar")
	c, stderr, code := copyJSON(t, "--all", src, "tar:"+archive)
	if code != 0 || len(c.Versions) != 3 || len(c.Failed) != 0 {
		t.Fatalf("copy --all to an archive: exit %d %+v\n%s", code, c, stderr)
	}
	dst := registrytest.StartPlain(t, t.TempDir()) + "/mirror/build"
	c, stderr, code = copyJSON(t, "--all", "--concurrency", "2", "--key", keys+".pub", "--signed-identity", src, "tar:"+archive, dst)
	if code != 0 || len(c.Versions) != 3 || !c.Verified {
		t.Fatalf("copy --all from the archive: exit %d %+v\n%s", code, c, stderr)
	}
	if _, _, code := copyJSON(t, "--all", src+":1.0.0", dst); code != cli.ExitUsage {
		t.Fatalf("copy --all with a tag: exit %d", code)
	}
}

// TestDocsCopyExamples runs every ociwf command of the Copy section of
// docs/operations.md, in order, against two registries ($REG, $MIRROR),
// and checks each exit code.
func TestDocsCopyExamples(t *testing.T) {
	page := docSection(t, "../../docs/operations.md", "Copy", 8)
	vars := map[string]string{"REG": registrytest.New(t), "MIRROR": registrytest.StartPlain(t, t.TempDir())}
	runDocCommands(t, "docs/operations.md Copy", page, vars, nil)
}
