package main

import (
	"context"
	"flag"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

var updateGolden = flag.Bool("update", false, "rewrite the report golden files")

var (
	digestRE = regexp.MustCompile(`sha256:[0-9a-f]{64}`)
	// The only duration measured from real times: review to publication.
	reviewRE = regexp.MustCompile(`("reviewToPublish": "|publication: )[0-9.hmsµn]+`)
	timeRE   = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
)

// normalise replaces the volatile parts of a report: the registry address,
// digests (numbered in order of appearance) and times. Durations stay: the
// only ones measured come from the times the test wrote.
func normalise(s, host string) string {
	s = strings.ReplaceAll(s, host, "REGISTRY")
	n := map[string]string{}
	s = digestRE.ReplaceAllStringFunc(s, func(d string) string {
		if _, ok := n[d]; !ok {
			n[d] = "sha256:<" + string(rune('A'+len(n))) + ">"
		}
		return n[d]
	})
	s = reviewRE.ReplaceAllString(s, "${1}<duration>")
	return timeRE.ReplaceAllString(s, "<time>")
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", "report", name)
	if *updateGolden {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -run TestReport -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (go test -run TestReport -update rewrites it):\n%s", name, got)
	}
}

func TestReportGolden(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	dir := t.TempDir()
	auditLog := filepath.Join(dir, "audit.jsonl")
	srv := registrytest.Start(t, registryext.Config{AuditLog: auditLog})
	host := srv.Addr()
	repo := host + "/wf/report"
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(`version: ociwf.dev/trust/v1
trustPolicies:
  - name: wf
    registryScopes: ["`+host+`/wf/**"]
    signers:
      - {name: ci, key: `+keys+`.pub}
    lifecycle:
      submit: [ci]
      publish: [ci]
      deprecate: [ci]
      retire: [ci]
      archive: [ci]
      emergency: {signers: [ci], threshold: 1}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tag := range []string{"1.0.0", "1.1.0", "1.2.0", "1.3.0"} {
		// One source per version, so that each is its own manifest.
		file := filepath.Join(dir, tag+".yaml")
		if err := os.WriteFile(file, append(append([]byte(nil), src...), "\n# version "+tag+"\n"...), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", file, repo+":"+tag); code != 0 {
			t.Fatal(stderr)
		}
		if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", keys+".key", repo+":"+tag); code != 0 {
			t.Fatal(stderr)
		}
	}
	// 2.0.0 goes through review before its publication.
	file := filepath.Join(dir, "2.0.0.yaml")
	if err := os.WriteFile(file, append(append([]byte(nil), src...), "\n# version 2.0.0\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := runCLI(t, "push", "--plain-http", "--offline", file, repo+":2.0.0")
	if code != 0 {
		t.Fatal(stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	pinned := lines[len(lines)-1]
	for _, c := range [][]string{{"review", "submit", pinned}, {"publish", pinned, "--tag", "2.0.0"}} {
		if out, stderr, code := runCLI(t, append(c, "--plain-http", "--key", keys+".key", "--policy", pol)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", c, code, out, stderr)
		}
	}
	// edge is mutable and its signature, made by digest, records no tag:
	// outside the coverage.
	file = filepath.Join(dir, "edge.yaml")
	if err := os.WriteFile(file, append(append([]byte(nil), src...), "\n# edge\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = runCLI(t, "push", "--plain-http", "--offline", file, repo+":edge")
	if code != 0 {
		t.Fatal(stderr)
	}
	lines = strings.Split(strings.TrimSpace(out), "\n")
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", keys+".key", lines[len(lines)-1]); code != 0 {
		t.Fatal(stderr)
	}
	// 3.0.0 uses 1.1.0, deprecated below: a deprecated version still used.
	file = filepath.Join(dir, "3.0.0.yaml")
	if err := os.WriteFile(file, []byte(`apiVersion: ociwf.dev/v1
kind: Workflow
metadata:
  name: release
  version: 3.0.0
steps:
  - id: ci
    uses: `+repo+`:1.1.0
    with:
      release: "true"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--key", keys+".key", file, repo+":3.0.0"); code != 0 {
		t.Fatal(stderr)
	}
	for _, c := range [][]string{
		{"lifecycle", "deprecate", repo + ":1.1.0", "--reason", "superseded by 1.2.0"},
		{"lifecycle", "retire", repo + ":1.2.0", "--reason", "end of support"},
		{"lifecycle", "retire", repo + ":1.3.0", "--emergency", "--reason", "credential leak", "--justification", "tokens printed to logs", "--impact", "every run since 1.3.0", "--remediation", "rotate tokens"},
	} {
		if out, stderr, code := runCLI(t, append([]string{c[0], c[1], "--plain-http", "--key", keys + ".key", "--policy", pol}, c[2:]...)...); code != 0 {
			t.Fatalf("%v: exit %d\n%s%s", c, code, out, stderr)
		}
	}
	// A denial: 1.0.0 is immutable under the default rule.
	ctx := context.Background()
	r, err := remote.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	l, err := oras.PushBytes(ctx, r, "application/octet-stream", []byte("other"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := oras.PackManifest(ctx, r, oras.PackManifestVersion1_1, "application/vnd.example", oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(ctx, m, "1.0.0"); err == nil {
		t.Fatal("moving 1.0.0 was allowed")
	}
	// 1.0.9 names 1.0.0's manifest, signed for 1.0.0 only: a moved tag,
	// which the verifier's reference check fails, is no published version.
	signed, err := r.Resolve(ctx, "1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Tag(ctx, signed, "1.0.9"); err != nil {
		t.Fatal(err)
	}
	// A denial in another repository is not this report's.
	other, err := remote.NewRepository(host + "/wf/other")
	if err != nil {
		t.Fatal(err)
	}
	other.PlainHTTP = true
	for i, content := range []string{"first", "second"} {
		l, err := oras.PushBytes(ctx, other, "application/octet-stream", []byte(content))
		if err != nil {
			t.Fatal(err)
		}
		m, err := oras.PackManifest(ctx, other, oras.PackManifestVersion1_1, "application/vnd.example", oras.PackManifestOptions{Layers: []ocispec.Descriptor{l}})
		if err != nil {
			t.Fatal(err)
		}
		if err := other.Tag(ctx, m, "1.0.0"); (err == nil) != (i == 0) {
			t.Fatalf("tag %d of wf/other:1.0.0: %v", i, err)
		}
	}
	st, err := cli2status(t, keys+".pub", repo+":1.0.0")
	if err != nil {
		t.Fatal(err)
	}
	// The monitor's results log: an ok check, then a failed one an hour later.
	monLog := filepath.Join(dir, "checks.jsonl")
	ml, err := audit.Open(monLog)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC().Add(-2 * time.Hour)
	for _, e := range []audit.Entry{
		{Time: t0, Outcome: audit.OK},
		{Time: t0.Add(time.Hour), Outcome: audit.Failed, Rule: "blob-digest", Message: "layer altered in storage"},
		{Time: t0.Add(90 * time.Minute), Outcome: audit.Failed, Rule: "blob-digest", Message: "layer altered in storage"},
	} {
		e.Kind, e.Actor, e.Repository, e.Digest, e.Tag, e.Operation = audit.KindCheck, "monitor", "wf/report", st.Digest, "1.0.0", "verify"
		if err := ml.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	ml.Close()

	base := []string{"report", "--plain-http", "--policy", pol, repo, "--audit-log", auditLog, "--monitor-log", monLog}
	js, stderr, code := runCLI(t, append(base, "--output", "json")...)
	if code != 0 {
		t.Fatalf("report --output json: exit %d\n%s%s", code, js, stderr)
	}
	for _, want := range []string{`"exceptionCount": 1`, `"violations": 1`, `"deprecated": 1`, `"retired": 2`, `"published": 7`, `"immutable": 6`, `"versions": 8`, `the tag was moved onto content signed for another version`, `"deprecatedReferenced": 1`, `"reviewToPublishVersions": 1`, `"chainVerified": true`} {
		if !strings.Contains(js, want) {
			t.Errorf("JSON report lacks %s", want)
		}
	}
	golden(t, "seeded.json.golden", normalise(js, host))
	md, stderr, code := runCLI(t, base...)
	if code != 0 {
		t.Fatalf("report: exit %d\n%s%s", code, md, stderr)
	}
	golden(t, "seeded.md.golden", normalise(md, host))
	html, stderr, code := runCLI(t, append(base, "--output", "html")...)
	if code != 0 {
		t.Fatalf("report --output html: exit %d\n%s", code, stderr)
	}
	checkDashboard(t, html, js)

	// A period after everything: nothing in it.
	out, _, code = runCLI(t, append(base, "--since", time.Now().Add(time.Hour).UTC().Format(time.RFC3339), "--output", "json")...)
	if code != 0 || !strings.Contains(out, `"exceptionCount": 0`) || !strings.Contains(out, `"violations": 0`) || !strings.Contains(out, `"checks": 0`) {
		t.Fatalf("report in an empty period: exit %d\n%s", code, out)
	}
	if _, _, code := runCLI(t, "report", "--plain-http", "--key", keys+".pub", repo, "--since", "yesterday"); code != cli.ExitUsage {
		t.Fatalf("bad --since: exit %d", code)
	}
}

// TestDocsReportExamples runs every command of the Compliance reports
// section of docs/operations.md, in order, against a registry extension
// that keeps the audit log the section reads, and checks each exit code.
func TestDocsReportExamples(t *testing.T) {
	page := docSection(t, "../../docs/operations.md", "Compliance reports", 6)
	srv := registrytest.Start(t, registryext.Config{AuditLog: "audit.jsonl"})
	runDocCommands(t, "docs/operations.md Compliance reports", page, map[string]string{"REG": srv.Addr()}, func(ex docExample, stdout, _ string) {
		if strings.HasSuffix(ex.cmd, "> report.html") && !strings.HasPrefix(stdout, "<!DOCTYPE html>") {
			t.Fatalf("%s wrote %.200q", ex.cmd, stdout)
		}
	})
}

// A registry that stops answering during a report fails the report: one
// missing its versions would look complete.
func TestReportFailsWhenTheRegistryDoesNotAnswer(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	host := registrytest.New(t)
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", host+"/wf/down"); code != 0 {
		t.Fatal(stderr)
	}
	u, err := url.Parse("http://" + host)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(proxy.Close)
	out, stderr, code := runCLI(t, "report", "--plain-http", "--key", keys+".pub", "--signed-identity", host+"/wf/down", strings.TrimPrefix(proxy.URL, "http://")+"/wf/down", "--output", "json")
	if code != 1 || !strings.Contains(out, "rerun when the registry answers") || !strings.Contains(out, "1.4.0") {
		t.Fatalf("report through a registry that does not answer: exit %d\n%s%s", code, out, stderr)
	}
}
