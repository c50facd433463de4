package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/registrytest/faults"
)

// fault is one row of the fault matrix: the rules set on the proxy while
// the command runs, and the flags the command gets.
type fault struct {
	name  string
	rules []faults.Rule
	flags []string
}

// matrixFaults are the faults every command runs under.
var matrixFaults = []fault{
	{name: "none"},
	{name: "500 on 1st manifest PUT", rules: []faults.Rule{{Method: "PUT", Path: faults.ManifestPath, Nth: 1, Status: 500}}},
	{name: "503 on every 3rd request", rules: []faults.Rule{{Every: 3, Status: 503}}},
	{name: "502 on every manifest PUT", rules: []faults.Rule{{Method: "PUT", Path: faults.ManifestPath, Status: 502}}},
	{name: "429 Retry-After on 1st PUT", rules: []faults.Rule{{Method: "PUT", Nth: 1, Action: faults.TooMany, RetryAfter: "1"}}},
	{name: "reset on 1st manifest PUT", rules: []faults.Rule{{Method: "PUT", Path: faults.ManifestPath, Nth: 1, Action: faults.Reset}}},
	{name: "reset on 1st upload POST", rules: []faults.Rule{{Method: "POST", Nth: 1, Action: faults.Reset}}},
	{name: "answer lost, 1st manifest PUT", rules: []faults.Rule{{Method: "PUT", Path: faults.ManifestPath, Nth: 1, Action: faults.Lost}}},
	{name: "truncated manifest GET", rules: []faults.Rule{{Method: "GET", Path: faults.ManifestPath, Nth: 1, Action: faults.Truncate}}},
	{name: "stall on 1st manifest GET", rules: []faults.Rule{{Method: "GET", Path: faults.ManifestPath, Nth: 1, Action: faults.Stall}}, flags: []string{"--timeout", "3s"}},
	{name: "other bytes on GET", rules: []faults.Rule{{Method: "GET", Path: regexp.MustCompile(`/(manifests|blobs)/sha256:`), Action: faults.OtherBytes}}},
	{name: "no Docker-Content-Digest", rules: []faults.Rule{{Action: faults.DropDigest}}},
	{name: "referrers list drops one", rules: []faults.Rule{{Action: faults.DropReferrer}}},
}

// matrix is what the fault matrix runs against: one registry, signing
// and signing keys.
type matrix struct {
	host, dir string
}

func (m *matrix) key(who string) string { return filepath.Join(m.dir, who+".key") }
func (m *matrix) pub(who string) string { return filepath.Join(m.dir, who+".pub") }

// cell is one command run under one fault through its own proxy.
type cell struct {
	m      *matrix
	proxy  *faults.Proxy
	repo   string // PROXY/...: the repository the command works on
	ref    string // the version the command works on, when prepared
	dgst   digest.Digest
	flags  []string
	policy string // the trust policy over PROXY/team/**
}

// matrixCommand is one column of the matrix.
type matrixCommand struct {
	name string
	// prep makes what the command needs, with no fault set.
	prep func(t *testing.T, c *cell)
	// run runs the command.
	run func(t *testing.T, c *cell) (string, string, int)
	// check reports what is wrong with the outcome, "" when the command
	// did its work and the result verifies.
	check func(t *testing.T, c *cell) string
	// intact reports what is wrong with the repository after a failed run
	// ("" when a tag names only complete, verifying versions).
	intact func(t *testing.T, c *cell) string
	// subject is the version whose accessories are counted.
	subject func(t *testing.T, c *cell) (repo string, d digest.Digest)
}

// publishPrep publishes the sample as 1.0.0 in c.repo with ci's key.
func publishPrep(t *testing.T, c *cell) {
	t.Helper()
	out, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", c.m.key("ci"), "--output", "json", samples+"build-test-release.yaml", c.repo+":1.0.0")
	var res publishJSON
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("prepare: publish: exit %d %s", code, stderr)
	}
	c.ref, c.dgst = c.repo+":1.0.0", digest.Digest(res.Descriptor.Digest)
}

func (m *matrix) verify(t *testing.T, ref string, extra ...string) string {
	t.Helper()
	args := append([]string{"verify", "--plain-http", "--key", m.pub("ci"), ref}, extra...)
	out, stderr, code := runCLI(t, args...)
	if code != 0 {
		return fmt.Sprintf("verify %s: exit %d: %s", ref, code, strings.TrimSpace(lastLines(out+stderr, 3)))
	}
	return ""
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " | ")
}

// tagIntact reports a tag ref that names a version that does not verify.
func (m *matrix) tagIntact(t *testing.T, ref string, verifyArgs ...string) string {
	t.Helper()
	if _, _, code := runCLI(t, "inspect", "--plain-http", ref); code != 0 {
		return "" // no tag
	}
	return m.verify(t, ref, verifyArgs...)
}

func (m *matrix) status(t *testing.T, ref string, args ...string) (string, int) {
	t.Helper()
	out, stderr, code := runCLI(t, append([]string{"status", "--plain-http", "--output", "json", ref}, args...)...)
	var st struct {
		State string
		Chain []struct{ ID string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil {
		return "status: exit " + fmt.Sprint(code) + " " + firstLine(stderr), 0
	}
	return st.State, len(st.Chain)
}

func (m *matrix) commands() []matrixCommand {
	pred := filepath.Join(m.dir, "review.json")
	versionSubject := func(t *testing.T, c *cell) (string, digest.Digest) { return c.repo, c.dgst }
	baseIntact := func(t *testing.T, c *cell) string { return m.verify(t, c.ref) }
	return []matrixCommand{{
		name: "publish",
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"publish", "--plain-http", "--offline", "--key", m.key("ci"), samples + "build-test-release.yaml", c.repo + ":1.0.0"}, c.flags...)...)
		},
		check:  func(t *testing.T, c *cell) string { return m.verify(t, c.repo+":1.0.0", "--require-signed-tag") },
		intact: func(t *testing.T, c *cell) string { return m.tagIntact(t, c.repo+":1.0.0", "--require-signed-tag") },
		subject: func(t *testing.T, c *cell) (string, digest.Digest) {
			return c.repo, resolve(t, repository(t, c.repo), "1.0.0")
		},
	}, {
		name: "sign",
		prep: publishPrep,
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"sign", "--plain-http", "--key", m.key("ops"), c.ref}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			if s := m.verify(t, c.ref); s != "" {
				return s
			}
			if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", m.pub("ops"), "--signature-only", c.ref); code != 0 {
				return "verify the new signature: " + lastLines(stderr, 2)
			}
			return ""
		},
		intact: baseIntact, subject: versionSubject,
	}, {
		name: "sign --referrers",
		prep: publishPrep,
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"sign", "--plain-http", "--referrers", "--key", m.key("ops"), c.ref}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			if s := m.verify(t, c.ref); s != "" {
				return s
			}
			if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", m.pub("ops"), "--signature-only", c.ref); code != 0 {
				return "verify the new signature: " + lastLines(stderr, 2)
			}
			return ""
		},
		intact: baseIntact, subject: versionSubject,
	}, {
		name: "attest --referrers",
		prep: publishPrep,
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"attest", "--plain-http", "--referrers", "--key", m.key("ci"), "--type", "https://example.com/review/v1", "--predicate", pred, c.ref}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			return m.verify(t, c.ref, "--type", "https://example.com/review/v1")
		},
		intact: baseIntact, subject: versionSubject,
	}, {
		name: "lifecycle deprecate",
		prep: publishPrep,
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"lifecycle", "deprecate", "--plain-http", "--key", m.key("ci"), c.ref, "--reason", "use 2.0"}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			if s := m.verify(t, c.ref); s != "" {
				return s
			}
			if st, n := m.status(t, c.ref, "--key", m.pub("ci")); st != "deprecated" || n != 2 {
				return fmt.Sprintf("state %s with %d events, want deprecated with 2", st, n)
			}
			return ""
		},
		intact: baseIntact, subject: versionSubject,
	}, {
		name: "approve",
		prep: func(t *testing.T, c *cell) {
			c.repo = c.proxy.Addr() + "/team/" + strings.TrimPrefix(c.repo, c.proxy.Addr()+"/m/")
			out, stderr, code := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", c.repo+":1.0.0-rc.1")
			if code != 0 {
				t.Fatalf("prepare: push: %s", stderr)
			}
			lines := strings.Split(strings.TrimSpace(out), "\n")
			c.ref = lines[len(lines)-1]
			_, d, _ := strings.Cut(c.ref, "@")
			c.dgst = digest.Digest(d)
			if _, stderr, code := runCLI(t, "review", "submit", "--plain-http", "--key", m.key("alice"), "--policy", c.policy, c.ref); code != 0 {
				t.Fatalf("prepare: submit: %s", stderr)
			}
		},
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"approve", "--plain-http", "--key", m.key("bob"), "--policy", c.policy, c.ref}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			if st, _ := m.status(t, c.ref, "--policy", c.policy); st != "approved" {
				return "state " + st + ", want approved"
			}
			return ""
		},
		intact: func(t *testing.T, c *cell) string {
			if st, _ := m.status(t, c.ref, "--policy", c.policy); st != "review" && st != "approved" {
				return "state " + st
			}
			return ""
		},
		subject: versionSubject,
	}, {
		name: "copy",
		prep: publishPrep,
		run: func(t *testing.T, c *cell) (string, string, int) {
			return runCLI(t, append([]string{"copy", "--plain-http", "--key", m.pub("ci"), "--signed-identity", c.repo, c.ref, c.repo + "-copy"}, c.flags...)...)
		},
		check: func(t *testing.T, c *cell) string {
			return m.verify(t, c.repo+"-copy:1.0.0", "--signed-identity", c.repo)
		},
		intact: func(t *testing.T, c *cell) string {
			return m.tagIntact(t, c.repo+"-copy:1.0.0", "--signed-identity", c.repo)
		},
		subject: func(t *testing.T, c *cell) (string, digest.Digest) { return c.repo + "-copy", c.dgst },
	}}
}

// accessories counts what is stored about d in repo (read past the
// proxy): signature and attestation layers under cosign's tags, and
// referrers.
func accessories(t *testing.T, host, repo string, d digest.Digest) int {
	t.Helper()
	if d == "" {
		return -1
	}
	_, path, _ := strings.Cut(repo, "/")
	store := repository(t, host+"/"+path)
	n := 0
	for _, suffix := range []string{".sig", ".att"} {
		desc, err := store.Resolve(context.Background(), "sha256-"+d.Encoded()+suffix)
		if err != nil {
			continue
		}
		raw, err := content.FetchAll(context.Background(), store, desc)
		var m ocispec.Manifest
		if err != nil || json.Unmarshal(raw, &m) != nil {
			t.Fatalf("read %s: %v", suffix, err)
		}
		n += len(m.Layers)
	}
	refs, err := registry.Referrers(context.Background(), store, ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: d}, "")
	if err == nil {
		n += len(refs)
	}
	return n
}

// TestFaultMatrix runs each command under each fault, through a fault
// proxy in front of a real registry: every cell must either succeed and
// verify, or fail with an error that names the registry and says to
// rerun, leaving no tag on an incomplete version; in both cases a rerun
// with the fault cleared must succeed, verify, and store exactly what a
// run without faults stores (no duplicate signature, attestation or
// lifecycle event). It prints the matrix.
func TestFaultMatrix(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("COSIGN_PASSWORD", "pw")
	for _, who := range []string{"alice", "bob", "ci", "ops"} {
		if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", filepath.Join(dir, who)); code != 0 {
			t.Fatal(stderr)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "review.json"), []byte(`{"reviewer":"sec"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	m := &matrix{host: registrytest.New(t), dir: dir}
	cmds, rows := m.commands(), matrixFaults
	if os.Getenv("OCIWF_FAULT_MATRIX") != "full" {
		// The package's tests run a corner of the matrix; scripts/faults.sh
		// runs all of it.
		cmds = slices.DeleteFunc(cmds, func(c matrixCommand) bool {
			return !slices.Contains([]string{"publish", "sign --referrers", "approve"}, c.name)
		})
		rows = slices.DeleteFunc(slices.Clone(rows), func(f fault) bool {
			return !slices.Contains([]string{"none", "503 on every 3rd request", "reset on 1st manifest PUT", "answer lost, 1st manifest PUT", "other bytes on GET", "no Docker-Content-Digest", "referrers list drops one"}, f.name)
		})
	}

	var mu sync.Mutex
	outcome := map[[2]string]string{}
	baseline := map[string]int{}
	broken := 0
	t.Run("cells", func(t *testing.T) {
		for _, cmd := range cmds {
			for fi, f := range rows {
				t.Run(cmd.name+"/"+f.name, func(t *testing.T) {
					if f.name != "none" {
						t.Parallel() // after the column's baseline
					}
					res, n := m.runCell(t, cmd, f, fi)
					mu.Lock()
					defer mu.Unlock()
					if f.name == "none" {
						baseline[cmd.name] = n
					} else if want := baseline[cmd.name]; n != want && !strings.HasPrefix(res, "BROKEN") {
						res = fmt.Sprintf("BROKEN: %d accessories after the rerun, %d without faults", n, want)
					}
					if strings.HasPrefix(res, "BROKEN") {
						broken++
						t.Error(res)
					}
					outcome[[2]string{cmd.name, f.name}] = res
				})
			}
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "\nFAULT MATRIX (%d commands x %d faults)\n", len(cmds), len(rows))
	for _, cmd := range cmds {
		fmt.Fprintf(&b, "== %s\n", cmd.name)
		for _, f := range rows {
			fmt.Fprintf(&b, "   %-32s %s\n", f.name, outcome[[2]string{cmd.name, f.name}])
		}
	}
	keys := make([]string, 0, len(baseline))
	for k := range baseline {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "   accessories without faults: %s %d\n", k, baseline[k])
	}
	fmt.Fprintf(&b, "MATRIX %d broken cells\n", broken)
	t.Log(b.String())
}

// runCell runs cmd under f in a repository of its own and returns the
// outcome and the number of accessories after the rerun.
func (m *matrix) runCell(t *testing.T, cmd matrixCommand, f fault, fi int) (string, int) {
	proxy := faults.Start(t, m.host)
	slug := strings.NewReplacer(" ", "-", "/", "-").Replace(cmd.name)
	c := &cell{m: m, proxy: proxy, repo: fmt.Sprintf("%s/m/%s-%d", proxy.Addr(), strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(slug, "-"), "-"), fi), flags: append([]string{"--retries", "2"}, f.flags...)}
	if cmd.name == "approve" {
		c.policy = m.writePolicy(t, proxy.Addr())
	}
	if cmd.prep != nil {
		cmd.prep(t, c)
	}
	proxy.Set(f.rules...)
	out, stderr, code := cmd.run(t, c)
	proxy.Set()
	fired := proxy.Fired()
	var res string
	switch {
	case code == 0:
		if s := cmd.check(t, c); s != "" {
			return "BROKEN: succeeded but " + s, 0
		}
		res = "succeeded + verified"
	case code == cli.ExitUsage || code == cli.ExitImmutable:
		return fmt.Sprintf("BROKEN: exit %d: %s", code, lastLines(stderr, 3)), 0
	default:
		msg := stderr
		if !strings.Contains(msg, proxy.Addr()) {
			return "BROKEN: the error does not name the registry: " + lastLines(msg, 3), 0
		}
		if code != cli.ExitVerification && !strings.Contains(msg, "rerun") {
			return "BROKEN: the error does not say what to do: " + lastLines(msg, 3), 0
		}
		if s := cmd.intact(t, c); s != "" {
			return "BROKEN: failed and left " + s, 0
		}
		res = fmt.Sprintf("failed cleanly (exit %d) + no tag", code)
	}
	if f.name != "none" && fired == 0 {
		res += " (fault never fired)"
	}
	t.Logf("%s under %q: exit %d\n%s%s", cmd.name, f.name, code, out, stderr)
	// Rerun with the fault cleared, and without the fault's flags (a short
	// --timeout).
	c.flags = nil
	if _, stderr, code := cmd.run(t, c); code != 0 {
		return fmt.Sprintf("BROKEN: %s, then the rerun failed: exit %d %s", res, code, lastLines(stderr, 3)), 0
	}
	if s := cmd.check(t, c); s != "" {
		return fmt.Sprintf("BROKEN: %s, then after the rerun %s", res, s), 0
	}
	repo, d := cmd.subject(t, c)
	return res, accessories(t, m.host, repo, d)
}

// writePolicy writes the lifecycle policy over host/team/**: alice
// submits, bob approves (one approval), ci signs and publishes.
func (m *matrix) writePolicy(t *testing.T, host string) string {
	t.Helper()
	path := filepath.Join(m.dir, strings.ReplaceAll(host, ":", "-")+".yaml")
	err := os.WriteFile(path, []byte(`version: ociwf.dev/trust/v1
trustPolicies:
  - name: team
    registryScopes: ["`+host+`/team/**"]
    signers:
      - {name: ci, key: ci.pub}
    lifecycle:
      signers:
        - {name: alice, key: alice.pub}
        - {name: bob, key: bob.pub}
        - {name: ops, key: ops.pub}
      submit: [alice]
      approve: {signers: [bob], threshold: 1}
      publish: [ci]
      deprecate: [ops]
      retire: [ops]
      archive: [ops]
      emergency: {signers: [ops, bob], threshold: 2}
`), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	return path
}

// runMainEnv makes the test binary run as ociwf, with its arguments.
const runMainEnv = "OCIWF_TEST_RUN_MAIN"

// serveProcess is `ociwf registry serve` run as a process of its own.
type serveProcess struct {
	cmd  *exec.Cmd
	addr string
}

// startServe starts `ociwf registry serve --root root --addr addr` (the
// test binary run as ociwf) and waits until it listens.
func startServe(t *testing.T, root, addr string) *serveProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "registry", "serve", "--root", root, "--addr", addr)
	cmd.Env = append(os.Environ(), runMainEnv+"=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &serveProcess{cmd: cmd}
	t.Cleanup(func() { p.kill() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "Serving on http://"); ok {
			p.addr, _, _ = strings.Cut(rest, " ")
			break
		}
	}
	if p.addr == "" {
		t.Fatalf("registry serve did not start: %v", sc.Err())
	}
	go io.Copy(io.Discard, out) //nolint:errcheck // drain the log
	return p
}

// stop stops the process gracefully (SIGTERM: requests under way finish)
// and waits for it.
func (p *serveProcess) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("registry serve after SIGTERM: %v", err)
	}
}

// kill stops the process at once (SIGKILL) and waits for it.
func (p *serveProcess) kill() {
	if p.cmd.ProcessState == nil {
		p.cmd.Process.Kill() //nolint:errcheck // it may have exited
		p.cmd.Wait()         //nolint:errcheck // killed
	}
}

// TestRegistryRestartMidPublish kills the registry process (SIGKILL) in the
// middle of a publish, at its first manifest write, and starts it again on
// the same root and port: the publish fails cleanly with no tag, the rerun
// completes, and verify --all is clean. A second publish has the registry
// stopped (SIGTERM) and started again under it between opening its first
// blob upload and completing it, every request held meanwhile: the upload
// begun before the restart completes after it (the upload secret is kept
// with the storage), and the publish completes in one run.
func TestRegistryRestartMidPublish(t *testing.T) {
	keys := newKeys(t)
	root := t.TempDir()
	reg := startServe(t, root, "127.0.0.1:0")
	addr := reg.addr
	proxy := faults.Start(t, addr)
	repo := proxy.Addr() + "/restart/build"
	var restarted *serveProcess
	proxy.Set(faults.Rule{Method: "PUT", Path: faults.ManifestPath, Nth: 1, Action: faults.Reset, Do: reg.kill})
	_, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--retries", "0", "--key", keys+".key", samples+"build-test-release.yaml", repo+":1.0.0")
	proxy.Set()
	if code != cli.ExitError || !strings.Contains(stderr, "rerun") || !strings.Contains(stderr, proxy.Addr()) {
		t.Fatalf("publish with the registry killed: exit %d, want 1 with what to do\n%s", code, stderr)
	}
	restarted = startServe(t, root, addr)
	if _, _, code := runCLI(t, "inspect", "--plain-http", repo+":1.0.0"); code == 0 {
		t.Fatal("the killed publish left a tag")
	}
	if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", repo+":1.0.0"); code != 0 {
		t.Fatalf("rerun after the restart: exit %d\n%s", code, stderr)
	}

	proxy.Set(faults.Rule{Method: "PUT", Path: regexp.MustCompile(`/blobs/uploads/`), Nth: 1, Action: faults.Pass, Do: func() {
		restarted.stop(t)
		restarted = startServe(t, root, addr)
	}})
	_, stderr, code = runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"fan-out-fan-in.yaml", repo+":2.0.0")
	fired := proxy.Fired()
	proxy.Set()
	if code != 0 || fired != 2 {
		t.Fatalf("publish across a restart: exit %d, %d faults\n%s", code, fired, stderr)
	}
	out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", "--all", repo)
	if code != 0 || !strings.Contains(out+stderr, "1.0.0") || !strings.Contains(out+stderr, "2.0.0") {
		t.Fatalf("verify --all after the restarts: exit %d\n%s%s", code, out, stderr)
	}
}

// TestDocsFaultsExamples runs every ociwf command of the Faults and
// retries section of docs/operations.md, in order, against an ociwf
// registry ($REG), and checks each exit code.
func TestDocsFaultsExamples(t *testing.T) {
	page := docSection(t, "../../docs/operations.md", "Faults and retries", 4)
	runDocCommands(t, "docs/operations.md Faults and retries", page, map[string]string{"REG": registrytest.New(t)}, func(ex docExample, _, stderr string) {
		if ex.exit == 1 && !strings.Contains(stderr, "--timeout") {
			t.Fatalf("%s: the error does not name --timeout:\n%s", ex.cmd, stderr)
		}
	})
}

// TestPublishLosesATagRace has another client take the version tag with
// other content between publish's check of the tag and its write (at the
// tag's PUT, held by the proxy): the registry refuses the write, and
// publish exits 4 naming the tag, as when the tag was taken before; the
// same race with identical content succeeds.
func TestPublishLosesATagRace(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	proxy := faults.Start(t, host)
	src, err := os.ReadFile(filepath.Join(samples, "build-test-release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "other.yaml")
	if err := os.WriteFile(other, []byte(strings.Replace(string(src), "description: Build, test", "description: Racing, build, test", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file string
		exit       int
	}{{"other content", other, cli.ExitImmutable}, {"identical content", samples + "build-test-release.yaml", 0}} {
		repo := "race/" + strings.ReplaceAll(tc.name, " ", "-")
		proxy.Set(faults.Rule{Method: "PUT", Path: regexp.MustCompile(`/manifests/1\.0\.0$`), Nth: 1, Action: faults.Pass, Do: func() {
			if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", tc.file, host+"/"+repo+":1.0.0"); code != 0 {
				t.Errorf("the racer: exit %d %s", code, stderr)
			}
		}})
		_, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", proxy.Addr()+"/"+repo+":1.0.0")
		fired := proxy.Fired()
		proxy.Set()
		if code != tc.exit || fired == 0 || (tc.exit != 0 && !strings.Contains(stderr, "taken by another client")) {
			t.Fatalf("%s: publish that lost the race: exit %d, want %d (%d faults)\n%s", tc.name, code, tc.exit, fired, stderr)
		}
	}
}
