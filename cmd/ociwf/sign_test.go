package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
)

func TestPublishSignAttestVerify(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	dir := t.TempDir()
	prefix := filepath.Join(dir, "release")
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", prefix); code != cli.ExitError || !strings.Contains(stderr, "--force") {
		t.Fatalf("key generate over existing keys: exit %d %s", code, stderr)
	}
	key, pub := prefix+".key", prefix+".pub"
	host := registrytest.New(t)
	repo := host + "/workflows/signed"

	out, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", key, "--builder-id", "https://ci.example/b", "--output", "json", samples+"build-test-release.yaml", repo)
	if code != 0 {
		t.Fatalf("publish: %s", stderr)
	}
	var res struct {
		Reference string
		Tag       string
		Steps     []struct{ Name string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Tag != "1.4.0" || len(res.Steps) != 6 || !strings.HasPrefix(res.Reference, repo+"@sha256:") {
		t.Fatalf("publish output %s (%v)", out, err)
	}
	// Text output ends with the pinned reference.
	out, _, code = runCLI(t, "publish", "--plain-http", "--offline", "--key", key, samples+"build-test-release.yaml", repo)
	if lines := strings.Split(strings.TrimSpace(out), "\n"); code != 0 || lines[len(lines)-1] != res.Reference || !strings.Contains(out, "already there") {
		t.Fatalf("republish: exit %d\n%s", code, out)
	}

	out, stderr, code = runCLI(t, "verify", "--plain-http", "--key", pub, "--require-signed-tag", "--output", "json", repo+":1.4.0")
	var ver struct {
		Verified     bool
		SignedTags   []string
		Checks       []struct{ Name, Status string }
		Attestations []struct{ PredicateType string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &ver) != nil || !ver.Verified || len(ver.SignedTags) != 1 || ver.SignedTags[0] != "1.4.0" || len(ver.Attestations) != 3 || ver.Attestations[2].PredicateType != lifecycle.EventPredicateType || len(ver.Checks) != 8 {
		t.Fatalf("verify: exit %d %s %s", code, out, stderr)
	}

	// A second signer and a custom attestation through sign and attest.
	other := filepath.Join(dir, "other")
	runCLI(t, "key", "generate", "--output-key-prefix", other)
	if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", other+".pub", res.Reference); code != cli.ExitVerification || !strings.Contains(stderr, "signatures check failed: no signature is made by a key trusted") {
		t.Fatalf("verify with another key: exit %d %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", other+".key", "-a", "approved=yes", res.Reference); code != 0 {
		t.Fatalf("sign: %s", stderr)
	}
	pred := filepath.Join(dir, "review.json")
	os.WriteFile(pred, []byte(`{"reviewer":"sec"}`), 0o600)
	if _, stderr, code := runCLI(t, "attest", "--plain-http", "--key", other+".key", "--type", "https://example.com/review/v1", "--predicate", pred, "--referrers", res.Reference); code != 0 {
		t.Fatalf("attest: %s", stderr)
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("not json"), 0o600)
	if _, stderr, code := runCLI(t, "attest", "--plain-http", "--key", other+".key", "--type", "cyclonedx", "--predicate", bad, res.Reference); code != cli.ExitError || !strings.Contains(stderr, "cyclonedx predicate") {
		t.Fatalf("attest a malformed predicate: exit %d %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "attest", "--plain-http", "--key", other+".key", "--type", "not a type", "--predicate", bad, res.Reference); code != cli.ExitUsage || !strings.Contains(stderr, "predicate type") {
		t.Fatalf("attest with a bad type: exit %d %s", code, stderr)
	}
	out, stderr, code = runCLI(t, "verify", "--plain-http", "--key", other+".pub", "--signature-only", "--type", "https://example.com/review/v1", res.Reference)
	if code != 0 || !strings.Contains(out, "attested https://example.com/review/v1 by "+other+".pub (referrers)") || !strings.Contains(stderr, "WARNING: --signature-only") {
		t.Fatalf("verify the second signer: exit %d %s %s", code, out, stderr)
	}
}

func TestSigningFailuresTagNothing(t *testing.T) {
	dir := t.TempDir()
	prefix := filepath.Join(dir, "k")
	t.Setenv("COSIGN_PASSWORD", "right")
	runCLI(t, "key", "generate", "--output-key-prefix", prefix)
	host := registrytest.New(t)
	repo := host + "/workflows/failing"
	cases := []struct {
		name     string
		password string
		args     []string
		code     int
		want     string
	}{
		{"wrong password", "wrong", []string{"--key", prefix + ".key"}, cli.ExitError, "wrong password"},
		{"unreadable key", "right", []string{"--key", filepath.Join(dir, "missing.key")}, cli.ExitError, "missing.key"},
		{"KMS without credentials", "right", []string{"--key", "hashivault://release"}, cli.ExitError, "check the KMS provider's credentials"},
		{"KMS without its plugin", "right", []string{"--key", "awskms:///alias/release"}, cli.ExitError, "no plugin sigstore-kms-awskms is on PATH (install it: go install ociwf.dev/cmd/sigstore-kms-awskms@"},
		{"transparency log unreachable", "right", []string{"--key", prefix + ".key", "--tlog-upload", "--rekor-url", "http://127.0.0.1:1"}, cli.ExitError, "transparency log"},
		{"no key", "right", nil, cli.ExitUsage, "--key"},
		{"key and keyless", "right", []string{"--key", prefix + ".key", "--keyless"}, cli.ExitUsage, "mutually exclusive"},
	}
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "none")
	pluginOnPath(t, "hashivault") // ociwf links no KMS provider
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("COSIGN_PASSWORD", c.password)
			args := append([]string{"publish", "--plain-http", "--offline"}, c.args...)
			_, stderr, code := runCLI(t, append(args, samples+"build-test-release.yaml", repo+":1.4.0")...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, stderr, c.code, c.want)
			}
			if _, _, code := runCLI(t, "inspect", "--plain-http", repo+":1.4.0"); code == 0 {
				t.Fatal("the tag was applied")
			}
		})
	}
}

// Without COSIGN_PASSWORD the password is read from a non-terminal stdin,
// as cosign reads it.
func TestKeyPasswordFromStdin(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "")
	os.Unsetenv("COSIGN_PASSWORD")
	prefix := filepath.Join(t.TempDir(), "piped")
	if _, stderr, code := cliIn(t, "from-stdin", "key", "generate", "--output-key-prefix", prefix); code != 0 {
		t.Fatalf("key generate: %s", stderr)
	}
	repo := registrytest.New(t) + "/workflows/piped"
	if _, _, code := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", repo); code != 0 {
		t.Fatal("push")
	}
	if _, stderr, code := cliIn(t, "wrong", "sign", "--plain-http", "--key", prefix+".key", repo+":1.4.0"); code != cli.ExitError || !strings.Contains(stderr, "wrong password") {
		t.Fatalf("sign with the wrong piped password: exit %d %s", code, stderr)
	}
	if _, stderr, code := cliIn(t, "from-stdin", "sign", "--plain-http", "--key", prefix+".key", repo+":1.4.0"); code != 0 {
		t.Fatalf("sign with the piped password: %s", stderr)
	}
}

// In GitHub Actions the provenance names the workflow run as builder and
// the repository, ref and commit as source; flags still win.
func TestProvenanceFromCI(t *testing.T) {
	env := map[string]string{
		"GITHUB_ACTIONS":      "true",
		"GITHUB_SERVER_URL":   "https://github.com",
		"GITHUB_REPOSITORY":   "acme/workflows",
		"GITHUB_WORKFLOW_REF": "acme/workflows/.github/workflows/release.yml@refs/heads/main",
		"GITHUB_REF":          "refs/heads/main",
		"GITHUB_SHA":          "0123456789abcdef0123456789abcdef01234567",
		"GITHUB_RUN_ID":       "42",
		"COSIGN_PASSWORD":     "ci",
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
	prefix := filepath.Join(t.TempDir(), "ci")
	runCLI(t, "key", "generate", "--output-key-prefix", prefix)
	repo := registrytest.New(t) + "/workflows/ci"
	provenanceOf := func(args ...string) string {
		t.Helper()
		if _, stderr, code := runCLI(t, append([]string{"publish", "--plain-http", "--offline", "--key", prefix + ".key"}, args...)...); code != 0 {
			t.Fatalf("publish: %s", stderr)
		}
		ref := args[len(args)-1]
		out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", prefix+".pub", "--output", "json", ref)
		if code != 0 {
			t.Fatalf("verify: %s", stderr)
		}
		var v struct {
			Attestations []struct {
				PredicateType string
				Statement     struct{ Predicate json.RawMessage }
			}
		}
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatal(err)
		}
		for _, a := range v.Attestations {
			if a.PredicateType == "https://slsa.dev/provenance/v1" {
				var compact bytes.Buffer
				if err := json.Compact(&compact, a.Statement.Predicate); err != nil {
					t.Fatal(err)
				}
				return compact.String()
			}
		}
		t.Fatalf("no provenance in %s", out)
		return ""
	}
	pred := provenanceOf(samples+"build-test-release.yaml", repo+":1.4.0")
	for _, want := range []string{
		`"builder":{"id":"https://github.com/acme/workflows/.github/workflows/release.yml@refs/heads/main"`,
		`"uri":"git+https://github.com/acme/workflows"`,
		`"ref":"refs/heads/main"`,
		`"gitCommit":"0123456789abcdef0123456789abcdef01234567"`,
		`"invocationId":"https://github.com/acme/workflows/actions/runs/42"`,
	} {
		if !strings.Contains(pred, want) {
			t.Errorf("provenance lacks %s:\n%s", want, pred)
		}
	}
	pred = provenanceOf("--builder-id", "https://builders.example.com/release", samples+"fan-out-fan-in.yaml", repo+":2.0.1")
	if !strings.Contains(pred, `"builder":{"id":"https://builders.example.com/release"`) {
		t.Errorf("--builder-id did not win:\n%s", pred)
	}
}

func TestSignatureFormat(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "s3cret")
	dir := t.TempDir()
	key := filepath.Join(dir, "release")
	other := filepath.Join(dir, "other")
	for _, p := range []string{key, other} {
		if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", p); code != 0 {
			t.Fatalf("key generate: %s", stderr)
		}
	}
	hosts := map[string]string{"ociwf registry": registrytest.New(t), "stock distribution": registrytest.StartPlain(t, t.TempDir())}
	for name, host := range hosts {
		for _, format := range []string{"bundle", "both"} {
			t.Run(name+"/"+format, func(t *testing.T) {
				repo := host + "/workflows/" + format
				args := []string{"publish", "--plain-http", "--offline", "--key", key + ".key", "--signature-format", format, samples + "build-test-release.yaml", repo}
				out, stderr, code := runCLI(t, args...)
				if code != 0 {
					t.Fatalf("publish: %s", stderr)
				}
				ref := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
				if out, _, code := runCLI(t, args...); code != 0 || !strings.Contains(out, "already there") {
					t.Fatalf("republish: exit %d\n%s", code, out)
				}
				if out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", key+".pub", "--require-signed-tag", repo+":1.4.0"); code != 0 {
					t.Fatalf("verify: exit %d %s %s", code, out, stderr)
				}
				if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", other+".key", "--signature-format", format, ref); code != 0 {
					t.Fatalf("sign: %s", stderr)
				}
				pred := filepath.Join(dir, "review.json")
				os.WriteFile(pred, []byte(`{"reviewer":"sec"}`), 0o600)
				if _, stderr, code := runCLI(t, "attest", "--plain-http", "--key", other+".key", "--signature-format", format, "--type", "https://example.com/review/v1", "--predicate", pred, ref); code != 0 {
					t.Fatalf("attest: %s", stderr)
				}
				if out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", other+".pub", "--signature-only", "--type", "https://example.com/review/v1", ref); code != 0 {
					t.Fatalf("verify the second signer: exit %d %s %s", code, out, stderr)
				}
			})
		}
	}
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", key+".key", "--signature-format", "v3", hosts["ociwf registry"]+"/workflows/bundle:1.4.0"); code != cli.ExitUsage || !strings.Contains(stderr, "signature format") {
		t.Fatalf("sign with a bad format: exit %d %s", code, stderr)
	}
}
