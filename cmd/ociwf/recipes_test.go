package main

// Tests of the CI recipes under docs/recipes: the GitHub Actions workflow
// is linted with actionlint (linked as a library) and, like the GitLab CI
// job, its ociwf commands are run as written against a loopback registry
// with a key file in place of the signer they name; the oras + cosign
// script runs for real with the pinned stock tools, and ociwf verifies
// what it published. They live with the CLI's tests because what they
// check is that the recipes are valid invocations of this command tree.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rhysd/actionlint"
	"go.yaml.in/yaml/v3"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

const recipes = "../../docs/recipes/"

// absSamples is the sample workflows' directory, for tests that change
// directory.
func absSamples(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(samples)
	if err != nil {
		t.Fatal(err)
	}
	return dir + string(filepath.Separator)
}

// readRecipe returns the bytes of a file under docs/recipes, and checks
// that page shows it verbatim: the fenced block after the line
// "<!-- recipe: NAME -->".
func readRecipe(t *testing.T, name, page string) []byte {
	t.Helper()
	raw, err := os.ReadFile(recipes + name)
	if err != nil {
		t.Fatal(err)
	}
	md, err := os.ReadFile(recipes + page)
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(md), "<!-- recipe: "+name+" -->\n")
	if !ok {
		t.Fatalf("%s does not show %s (no <!-- recipe: %s --> marker)", page, name, name)
	}
	_, block, ok := strings.Cut(after, "\n")
	end := strings.Index(block, "\n```\n")
	if !ok || !strings.HasPrefix(after, "```") || end < 0 {
		t.Fatalf("%s: no fenced block after the %s marker", page, name)
	}
	if shown := block[:end+1]; shown != string(raw) {
		t.Fatalf("%s shows another %s than the file: update the page's copy", page, name)
	}
	return raw
}

// lintWorkflow lints a GitHub Actions workflow with actionlint and returns
// its findings.
func lintWorkflow(t *testing.T, name string, src []byte) []*actionlint.Error {
	t.Helper()
	var out bytes.Buffer
	l, err := actionlint.NewLinter(&out, &actionlint.LinterOptions{Oneline: true})
	if err != nil {
		t.Fatal(err)
	}
	errs, err := l.Lint(name, src, nil)
	if err != nil {
		t.Fatalf("actionlint %s: %v", name, err)
	}
	return errs
}

// recipeCommand is one ociwf command line of a recipe's shell script.
type recipeCommand struct {
	line  string
	args  []string // after "ociwf"
	stdin bool     // fed from a pipe (printf '%s' "$TOKEN" | ociwf ...)
}

// ociwfCommands returns the ociwf command lines of script, with $NAME and
// ${NAME} taken from vars (a name vars lacks fails the test). Lines
// continued with a trailing backslash are joined.
func ociwfCommands(t *testing.T, where, script string, vars map[string]string) []recipeCommand {
	t.Helper()
	var cmds []recipeCommand
	for _, line := range strings.Split(strings.ReplaceAll(script, "\\\n", " "), "\n") {
		line = strings.TrimSpace(line)
		cmd, piped := line, false
		if _, after, ok := strings.Cut(line, " | "); ok {
			cmd, piped = strings.TrimSpace(after), true
		}
		if !strings.HasPrefix(cmd, "ociwf ") {
			continue
		}
		words, err := shellWords(cmd, func(k string) string {
			v, ok := vars[k]
			if !ok {
				t.Fatalf("%s: %q uses $%s, which the test does not set", where, line, k)
			}
			return v
		})
		if err != nil {
			t.Fatalf("%s: %q: %v", where, line, err)
		}
		cmds = append(cmds, recipeCommand{line: line, args: words[1:], stdin: piped})
	}
	return cmds
}

// shellWords splits a command line as a POSIX shell would for the recipes:
// words separated by blanks, single quotes literal, double quotes with
// $NAME and ${NAME} expanded by expand, unquoted $NAME expanded too.
func shellWords(line string, expand func(string) string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			} else {
				cur.WriteByte(c)
			}
		case c == '\'' && quote == 0, c == '"' && quote == 0:
			quote, in = c, true
		case c == '"' && quote == '"':
			quote = 0
		case c == '$':
			name, n := varName(line[i+1:])
			if name == "" {
				return nil, fmt.Errorf("a $ that is no variable at column %d", i)
			}
			cur.WriteString(expand(name))
			i += n
			in = true
		case (c == ' ' || c == '\t') && quote == 0:
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated %c quote", quote)
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

var varNameRE = regexp.MustCompile(`^(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))`)

// varName reads the variable name at the start of s (after a $) and how
// many bytes it took.
func varName(s string) (string, int) {
	m := varNameRE.FindStringSubmatch(s)
	if m == nil {
		return "", 0
	}
	return m[1] + m[2], len(m[0])
}

// withKeyFile swaps the signer an ociwf command names (--keyless with
// --tlog-upload and --policy, or --key KMS-URI) for the key file key, and
// adds --plain-http: loopback registries have no TLS, and no Fulcio or KMS
// is reachable from a test. Everything else stays as the recipe wrote it.
func withKeyFile(args []string, key string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		switch args[i] {
		case "--keyless", "--tlog-upload":
		case "--policy", "--key":
			i++
		default:
			out = append(out, args[i])
		}
	}
	return append(out, "--key", key, "--plain-http")
}

// runRecipeCommands runs cmds in dir (with the sample workflows in
// workflows/, as the recipes expect; the test's working directory from
// then on) signed with a fresh key file, checks each exits 0, and returns
// the key's prefix.
func runRecipeCommands(t *testing.T, where string, cmds []recipeCommand, dir string) string {
	t.Helper()
	if len(cmds) == 0 {
		t.Fatalf("%s: no ociwf commands", where)
	}
	keys := newKeys(t)
	t.Chdir(dir)
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	for _, c := range cmds {
		stdin := ""
		if c.stdin {
			stdin = "registry-token"
		}
		args := withKeyFile(c.args, keys+".key")
		stdout, stderr, code := cliIn(t, stdin, args...)
		if code != cli.ExitOK {
			t.Fatalf("%s: %s\nran as: ociwf %s\nexit %d\nstdout:\n%s\nstderr:\n%s", where, c.line, strings.Join(args, " "), code, stdout, stderr)
		}
	}
	return keys
}

// sampleWorkflowsDir makes a directory with workflows/ holding two sample
// workflows, as the recipes publish them, and returns it.
func sampleWorkflowsDir(t *testing.T) string {
	t.Helper()
	dir, src := t.TempDir(), absSamples(t)
	if err := os.Mkdir(filepath.Join(dir, "workflows"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"build-test-release.yaml", "fan-out-fan-in.yaml"} {
		raw, err := os.ReadFile(src + f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "workflows", f), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// verifyPublished checks that prefix/build-test-release:1.4.0 and
// prefix/fan-out-fan-in:2.0.1, the sample workflows, verify with the key.
func verifyPublished(t *testing.T, where, prefix, keys string) {
	t.Helper()
	for _, ref := range []string{prefix + "/build-test-release:1.4.0", prefix + "/fan-out-fan-in:2.0.1"} {
		if stdout, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", ref); code != cli.ExitOK {
			t.Fatalf("%s: ociwf verify %s: exit %d\n%s%s", where, ref, code, stdout, stderr)
		}
	}
}

// checkRecipePolicy loads a recipe's trust policy the way ociwf does, with
// a Sigstore trusted root beside it, and checks that it has a keyless
// signer for issuer and covers repo.
func checkRecipePolicy(t *testing.T, name, repo, issuer string) {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(recipes + name)
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.ReadFile("../../testdata/policies/sigstore/trusted_root.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sigstore"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sigstore", "trusted_root.json"), root, 0o644); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "trust-policy.yaml")
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := trust.Load(path)
	if err != nil {
		t.Fatalf("%s does not load: %v", name, err)
	}
	s, err := p.For(repo)
	if err != nil {
		t.Fatalf("%s does not cover %s: %v", name, repo, err)
	}
	for _, sg := range s.Signers {
		if sg.Keyless != nil && sg.Keyless.Issuer == issuer {
			return
		}
	}
	t.Fatalf("%s: scope %q has no keyless signer with issuer %s", name, s.Name, issuer)
}

// ghWorkflow is the part of a GitHub Actions workflow the test reads.
type ghWorkflow struct {
	Permissions map[string]string `yaml:"permissions"`
	Env         map[string]string `yaml:"env"`
	Jobs        map[string]struct {
		Permissions map[string]string `yaml:"permissions"`
		Env         map[string]string `yaml:"env"`
		Steps       []struct {
			Uses string            `yaml:"uses"`
			Run  string            `yaml:"run"`
			Env  map[string]string `yaml:"env"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

var pinnedAction = regexp.MustCompile(`^[A-Za-z0-9-]+/[A-Za-z0-9._/-]+@[0-9a-f]{40}$`)

// TestRecipeGitHubActions lints docs/recipes/github-actions/publish.yml
// with actionlint (and a broken workflow, which must fail), checks its
// permissions and pins, and runs its ociwf commands against a loopback
// registry.
func TestRecipeGitHubActions(t *testing.T) {
	const name = "github-actions/publish.yml"
	src := readRecipe(t, name, "github-actions.md")
	for _, e := range lintWorkflow(t, recipes+name, src) {
		t.Errorf("actionlint: %s:%d:%d: %s [%s]", name, e.Line, e.Column, e.Message, e.Kind)
	}

	// The linter is wired in: a workflow with a misspelt permission, an
	// unknown context and a step without uses or run fails it.
	broken := strings.NewReplacer("id-token: write   # an OIDC token for Fulcio", "id-tokens: write   # misspelt",
		"secrets.GITHUB_TOKEN", "secret.GITHUB_TOKEN").Replace(string(src))
	broken += "      - name: neither uses nor run\n"
	kinds := map[string]bool{}
	for _, e := range lintWorkflow(t, "broken.yml", []byte(broken)) {
		kinds[e.Kind] = true
	}
	for _, want := range []string{"permissions", "expression", "syntax-check"} {
		if !kinds[want] {
			t.Errorf("actionlint found no %s error in the broken workflow (found %v)", want, kinds)
		}
	}

	var wf ghWorkflow
	if err := yaml.Unmarshal(src, &wf); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(wf.Permissions) != 0 {
		t.Errorf("%s: top-level permissions %v, want none (permissions: {})", name, wf.Permissions)
	}
	want := map[string]string{"contents": "read", "packages": "write", "id-token": "write"}
	if len(wf.Jobs) != 2 {
		t.Fatalf("%s: jobs %d, want keyless and kms", name, len(wf.Jobs))
	}
	host := registrytest.New(t)
	for job, j := range wf.Jobs {
		if fmt.Sprint(j.Permissions) != fmt.Sprint(want) {
			t.Errorf("%s: job %s has permissions %v, want %v", name, job, j.Permissions, want)
		}
		vars := map[string]string{"REGISTRY_PREFIX": host + "/gh-" + job, "REGISTRY_TOKEN": "token", "GITHUB_ACTOR": "ci"}
		for k, v := range j.Env {
			vars[k] = v
		}
		var script strings.Builder
		installed := ""
		for _, s := range j.Steps {
			if s.Uses != "" && !pinnedAction.MatchString(s.Uses) {
				t.Errorf("%s: job %s uses %s, not pinned by commit", name, job, s.Uses)
			}
			if strings.Contains(s.Run, "go install") {
				installed += s.Run
			}
			script.WriteString(s.Run + "\n")
		}
		if !strings.Contains(installed, `"ociwf.dev/cmd/ociwf@${OCIWF_VERSION}"`) || wf.Env["OCIWF_VERSION"] == "" {
			t.Errorf("%s: job %s does not go install ociwf.dev/cmd/ociwf@${OCIWF_VERSION}", name, job)
		}
		if strings.Contains(j.Env["SIGNING_KEY"], "awskms://") && !strings.Contains(installed, "ociwf.dev/cmd/sigstore-kms-awskms@") {
			t.Errorf("%s: job %s signs with %s but does not install sigstore-kms-awskms", name, job, j.Env["SIGNING_KEY"])
		}
		cmds := ociwfCommands(t, name+" job "+job, script.String(), vars)
		t.Run(job, func(t *testing.T) {
			keys := runRecipeCommands(t, name+" job "+job, cmds, sampleWorkflowsDir(t))
			verifyPublished(t, name+" job "+job, host+"/gh-"+job, keys)
		})
	}
	checkRecipePolicy(t, "github-actions/trust-policy.yaml", "ghcr.io/acme/workflows/build-test-release", "https://token.actions.githubusercontent.com")
}

// TestRecipeGitLabCI parses docs/recipes/gitlab-ci.yml, checks its OIDC
// token, and runs its job's ociwf commands against a loopback registry.
func TestRecipeGitLabCI(t *testing.T) {
	const name = "gitlab-ci.yml"
	src := readRecipe(t, name, "gitlab-ci.md")
	var doc struct {
		Variables map[string]string `yaml:"variables"`
		Job       struct {
			Image    string `yaml:"image"`
			IDTokens map[string]struct {
				Aud string `yaml:"aud"`
			} `yaml:"id_tokens"`
			Script []string `yaml:"script"`
		} `yaml:"publish-workflows"`
	}
	if err := yaml.Unmarshal(src, &doc); err != nil {
		t.Fatalf("%s does not parse: %v", name, err)
	}
	if tok, ok := doc.Job.IDTokens["SIGSTORE_ID_TOKEN"]; !ok || tok.Aud != "sigstore" {
		t.Errorf("%s: id_tokens %v, want SIGSTORE_ID_TOKEN with aud sigstore", name, doc.Job.IDTokens)
	}
	if len(doc.Job.Script) == 0 || !strings.Contains(doc.Job.Script[0], `go install "ociwf.dev/cmd/ociwf@${OCIWF_VERSION}"`) || doc.Variables["OCIWF_VERSION"] == "" {
		t.Errorf("%s: the script does not start with go install ociwf.dev/cmd/ociwf@${OCIWF_VERSION}: %q", name, doc.Job.Script)
	}
	host := registrytest.New(t)
	vars := map[string]string{"CI_REGISTRY_IMAGE": host + "/acme/workflows", "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": "token"}
	for k, v := range doc.Variables {
		vars[k] = os.Expand(v, func(k string) string { return vars[k] })
	}
	cmds := ociwfCommands(t, name, strings.Join(doc.Job.Script, "\n"), vars)
	t.Run("publish-workflows", func(t *testing.T) {
		keys := runRecipeCommands(t, name, cmds, sampleWorkflowsDir(t))
		verifyPublished(t, name, host+"/acme/workflows/workflows", keys)
	})
	checkRecipePolicy(t, "gitlab-trust-policy.yaml", "registry.gitlab.com/acme/workflows/workflows/build-test-release", "https://gitlab.com")
}

// stockTool returns the path of a pinned stock tool scripts/tools.sh
// builds into .tools/bin; without it the test is skipped, unless CI=true
// or OCIWF_REQUIRE_SERVICES=1 (scripts/test.sh) makes that a failure.
func stockTool(t *testing.T, name string) string {
	t.Helper()
	bin, err := filepath.Abs("../../.tools/bin/" + name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" || os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
			t.Fatalf("stock %s missing (scripts/tools.sh builds it): %v", name, err)
		}
		t.Skipf("stock %s not built (%s; run scripts/tools.sh)", name, bin)
	}
	return bin
}

// TestRecipeOrasCosign runs docs/recipes/oras-cosign.sh with stock oras
// and cosign against a loopback registry and verifies the result with
// ociwf.
func TestRecipeOrasCosign(t *testing.T) {
	oras := stockTool(t, "oras")
	stockTool(t, "cosign")
	for _, tool := range []string{"bash", "jq", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the recipe needs %s: %v", tool, err)
		}
	}
	script, err := filepath.Abs(recipes + "oras-cosign.sh")
	if err != nil {
		t.Fatal(err)
	}
	host := registrytest.New(t)
	keys := newKeys(t)
	src := absSamples(t)
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))

	// compiled: the files ociwf's compiler writes, as the page says.
	compiled := func(sample, out string) {
		t.Helper()
		layout := out + "-layout:" + map[string]string{"build-test-release.yaml": "1.4.0", "fan-out-fan-in.yaml": "2.0.1"}[sample]
		for _, args := range [][]string{
			{"push", "--oci-layout", "--offline", src + sample, layout},
			{"pull", "--oci-layout", "--insecure-skip-verify", layout, "-o", out},
		} {
			if _, stderr, code := runCLI(t, args...); code != cli.ExitOK {
				t.Fatalf("ociwf %v: exit %d: %s", args, code, stderr)
			}
		}
	}
	compiled("build-test-release.yaml", "compiled")
	run := func(files, ref string) (string, string, int) {
		t.Helper()
		cmd := exec.Command("bash", script, files, ref, keys+".key")
		cmd.Env = append(os.Environ(), "PATH="+filepath.Dir(oras)+string(os.PathListSeparator)+os.Getenv("PATH"),
			"PLAIN_HTTP=true", "DOCKER_CONFIG="+t.TempDir())
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); ok {
			return stdout.String(), stderr.String(), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return stdout.String(), stderr.String(), 0
	}
	repo := host + "/stock/build-test-release"
	stdout, stderr, code := run("compiled", repo+":1.4.0")
	if code != 0 {
		t.Fatalf("oras-cosign.sh: exit %d\n%s%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	pinned := lines[len(lines)-1]
	if !strings.HasPrefix(pinned, repo+"@sha256:") {
		t.Fatalf("oras-cosign.sh printed %q last, want %s@sha256:...", pinned, repo)
	}

	// Every check passes, with the key the script signed with.
	out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", "--output", "json", repo+":1.4.0")
	var rep struct {
		Checks []struct{ Name, Status string }
	}
	if code != cli.ExitOK || json.Unmarshal([]byte(out), &rep) != nil {
		t.Fatalf("ociwf verify of the script's output: exit %d\n%s%s", code, out, stderr)
	}
	passed := map[string]bool{}
	for _, c := range rep.Checks {
		passed[c.Name] = c.Status == "pass"
	}
	for _, c := range []string{"reference", "manifest", "blobs", "signatures", "attestations", "sbom", "reproducibility", "lifecycle"} {
		if !passed[c] {
			t.Errorf("ociwf verify: check %s did not pass (%s)", c, out)
		}
	}

	// The very artifact ociwf push makes of the same file.
	out, stderr, code = runCLI(t, "push", "--plain-http", "--offline", src+"build-test-release.yaml", host+"/ociwf/build-test-release")
	if code != cli.ExitOK {
		t.Fatalf("ociwf push: exit %d: %s", code, stderr)
	}
	if got, want := pinned[strings.LastIndex(pinned, "@"):], strings.TrimSpace(out[strings.LastIndex(out, "@"):]); got != want {
		t.Errorf("the script pushed %s, ociwf push %s of the same workflow", got, want)
	}

	// Another workflow, and a tag that is not a workflow's version.
	compiled("fan-out-fan-in.yaml", "other")
	if stdout, stderr, code := run("other", repo+":2.0.1"); code != 0 {
		t.Fatalf("oras-cosign.sh other:2.0.1: exit %d\n%s%s", code, stdout, stderr)
	}
	if stdout, stderr, code := run("compiled", repo+":9.9.9"); code != 2 || !strings.Contains(stderr, "not the workflow's metadata.version") {
		t.Errorf("oras-cosign.sh with a tag that is not the version: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	// A tag taken by other content, as another publisher would leave it.
	if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", src+"fan-out-fan-in.yaml", host+"/taken/build-test-release:1.4.0"); code != 0 {
		t.Fatal(stderr)
	}
	if stdout, stderr, code := run("compiled", host+"/taken/build-test-release:1.4.0"); code != cli.ExitImmutable || !strings.Contains(stderr, "already names") {
		t.Errorf("oras-cosign.sh onto a tag naming other content: exit %d, want 4\n%s%s", code, stdout, stderr)
	}

	// The wrong key fails the signatures check.
	other := newKeys(t)
	if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", other+".pub", repo+":1.4.0"); code != cli.ExitVerification || !strings.Contains(stderr, "signatures") {
		t.Errorf("ociwf verify with another key: exit %d, want 3 (signatures): %s", code, stderr)
	}
}
