package main

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"
)

// serve runs ociwf registry serve with args until the test ends and
// returns its address.
func serve(t *testing.T, args ...string) string {
	t.Helper()
	var started struct{ Addr string }
	serveRead(t, func(r *bufio.Reader) error { return json.NewDecoder(r).Decode(&started) }, append([]string{"--addr", "127.0.0.1:0", "--output", "json"}, args...)...)
	return started.Addr
}

func TestRegistryServeRulesAndAudit(t *testing.T) {
	dir := t.TempDir()
	rules := filepath.Join(dir, "rules.yaml")
	os.WriteFile(rules, []byte("version: ociwf.dev/immutability/v1\nrules:\n  - name: stable\n    repositories: [\"workflows/**\"]\n    tags: [\"stable\"]\n    mode: immutable\n"), 0o600)
	log := filepath.Join(dir, "audit.jsonl")
	addr := serve(t, "--root", filepath.Join(dir, "data"), "--rules", rules, "--audit-log", log)

	repo, err := remote.NewRepository(addr + "/workflows/cli")
	if err != nil {
		t.Fatal(err)
	}
	repo.PlainHTTP = true
	ctx := context.Background()
	push := func(layer string) ocispec.Descriptor {
		t.Helper()
		l, err := oras.PushBytes(ctx, repo, "application/octet-stream", []byte(layer))
		if err != nil {
			t.Fatal(err)
		}
		m, err := oras.PackManifest(ctx, repo, oras.PackManifestVersion1_1, "application/vnd.example", oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := push("a"), push("b")
	if err := repo.Tag(ctx, a, "stable"); err != nil {
		t.Fatal(err)
	}
	if err := repo.Tag(ctx, b, "stable"); err == nil || !strings.Contains(err.Error(), "immutable (rule stable)") {
		t.Fatalf("moving stable: %v", err)
	}
	// The rules file replaced the defaults: semver tags move here.
	for _, d := range []ocispec.Descriptor{a, b} {
		if err := repo.Tag(ctx, d, "1.0.0"); err != nil {
			t.Fatal(err)
		}
	}
	out, stderr, code := cli(t, "audit", "verify", log)
	if code != 0 || !strings.Contains(out, "1 policy violations") {
		t.Fatalf("audit verify: exit %d %s %s", code, out, stderr)
	}
	resp, err := http.Get("http://" + addr + "/v2/workflows/cli/referrers/" + digest.FromString("x").String())
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("referrers: %v %v", resp, err)
	}
	resp.Body.Close()
}

func TestRegistryServeBadConfig(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "rules.yaml")
	os.WriteFile(bad, []byte("version: ociwf.dev/immutability/v1\nrules: [{name: x, mode: frozen}]\n"), 0o600)
	if _, stderr, code := cli(t, "registry", "serve", "--addr", "127.0.0.1:0", "--rules", bad); code != exitError || !strings.Contains(stderr, "rules.yaml") {
		t.Fatalf("bad rules: exit %d %s", code, stderr)
	}
	if _, stderr, code := cli(t, "registry", "serve", "--config", bad, "--root", dir); code != exitUsage {
		t.Fatalf("--config with --root: exit %d %s", code, stderr)
	}
}
