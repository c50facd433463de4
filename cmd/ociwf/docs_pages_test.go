package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// A documentation page's examples, as TestDocsExamples reads them: every
// fenced block has a language; ```sh blocks are commands, run in order in
// one directory with bash; <!-- file: NAME --> before a block saves it as
// NAME at that point; <!-- not run: REASON --> before a ```sh block
// exempts it, and each page's exemptions are counted (docPageSetups).

// docBlock is one fenced block of a page.
type docBlock struct {
	line   int    // of the opening fence, 1-based
	lang   string // the fence's info string
	file   string // from <!-- file: NAME -->
	notRun string // from <!-- not run: REASON -->
	lines  []docLine
}

// docLine is one line of a block, with its line number in the page.
type docLine struct {
	n    int
	text string
}

// docCommand is one command of a ```sh block: its lines joined where they
// end in a backslash, and the exit code a trailing "# exits N" expects.
type docCommand struct {
	line int
	text string
	exit int
}

var (
	fileMarker   = regexp.MustCompile(`^<!-- file: (\S+) -->$`)
	notRunMarker = regexp.MustCompile(`^<!-- not run: (.+) -->$`)
)

// readDocBlocks reads every fenced block of the page at path; it fails on
// a fence without a language, a marker not followed by a fence, and a
// block left open.
func readDocBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	name := filepath.Base(path)
	var blocks []docBlock
	var cur *docBlock
	var indent int
	var file, notRun string
	markerLine := 0
	for i, line := range strings.Split(string(raw), "\n") {
		n := i + 1
		trimmed := strings.TrimLeft(line, " ")
		if cur != nil {
			if trimmed == "```" && len(line)-len(trimmed) <= indent {
				blocks = append(blocks, *cur)
				cur = nil
				continue
			}
			// Content lines lose the fence's indentation (blocks in lists).
			text := line
			for k := 0; k < indent && strings.HasPrefix(text, " "); k++ {
				text = text[1:]
			}
			cur.lines = append(cur.lines, docLine{n, text})
			continue
		}
		if strings.HasPrefix(trimmed, "```") {
			lang := strings.TrimSpace(strings.TrimPrefix(trimmed, "```"))
			if lang == "" {
				t.Errorf("%s:%d: a fence without a language: use sh for commands, text for output and synopses", name, n)
			}
			cur = &docBlock{line: n, lang: lang, file: file, notRun: notRun}
			indent = len(line) - len(trimmed)
			file, notRun, markerLine = "", "", 0
			continue
		}
		if markerLine != 0 {
			t.Errorf("%s:%d: the marker is not followed by a fenced block", name, markerLine)
			file, notRun, markerLine = "", "", 0
		}
		if m := fileMarker.FindStringSubmatch(trimmed); m != nil {
			file, markerLine = m[1], n
		} else if m := notRunMarker.FindStringSubmatch(trimmed); m != nil {
			notRun, markerLine = m[1], n
		} else if strings.HasPrefix(trimmed, "<!-- file") || strings.HasPrefix(trimmed, "<!-- not run") {
			t.Errorf("%s:%d: malformed marker %q", name, n, trimmed)
		}
	}
	if cur != nil {
		t.Errorf("%s:%d: the block is never closed", name, cur.line)
	}
	return blocks
}

// commands splits a ```sh block into its commands.
func (b docBlock) commands() []docCommand {
	var cmds []docCommand
	var cur *docCommand
	for _, l := range b.lines {
		text := l.text
		if cur == nil {
			s := strings.TrimSpace(text)
			if s == "" || strings.HasPrefix(s, "#") {
				continue
			}
			cur = &docCommand{line: l.n}
		} else {
			cur.text += "\n"
		}
		if strings.HasSuffix(text, "\\") {
			cur.text += text
			continue
		}
		cur.text += text
		if m := exitsComment.FindStringSubmatchIndex(cur.text); m != nil {
			cur.exit, _ = strconv.Atoi(cur.text[m[2]:m[3]])
			cur.text = strings.TrimRight(cur.text[:m[0]], " ")
		}
		cmds = append(cmds, *cur)
		cur = nil
	}
	if cur != nil { // a continuation at the end of the block
		cmds = append(cmds, *cur)
	}
	return cmds
}

// docPageSetup is what a page's examples need beyond the defaults (a fresh
// ociwf registry as $REG, $SRC, $COSIGN_PASSWORD).
type docPageSetup struct {
	// notRun is the number of ```sh blocks the page marks not run.
	notRun int
	// minCommands is the fewest commands the page must run.
	minCommands int
	// serve: $REG and $REPLICA are free loopback addresses for the page
	// to start its own registries on, not running registries.
	serve bool
	// mirror: $MIRROR is a second registry, stock Distribution.
	mirror bool
	// tools are the pinned stock tools the page runs.
	tools []string
	// before prepares the page's directory before its examples run.
	before func(t *testing.T, blocks []docBlock, dir string)
	// check checks the outcome of the page's commands.
	check func(t *testing.T, dir string, ran []docRun)
}

// docPageSetups lists every page of docs/; a page missing here fails, so
// that a new page is run too.
var docPageSetups = map[string]docPageSetup{
	"artifact-format.md": {notRun: 1, minCommands: 8, tools: []string{"oras"}},
	"benchmarks.md":      {},          // written by scripts/bench.sh: figures, no commands
	"deploy.md":          {notRun: 3}, // image (network base image), cluster, systemd; cmd/ociwf-registry's image and deploy tests run the files
	"dsl.md":             {},
	"embedding.md":       {notRun: 1, minCommands: 4, before: buildEmbeddingExample, check: checkEmbeddingExample},
	"getting-started.md": {notRun: 1, minCommands: 15, serve: true},
	"lifecycle.md":       {minCommands: 35, tools: []string{"cosign"}},
	"operations.md":      {minCommands: 30, mirror: true},
	"policy.md":          {notRun: 1, minCommands: 10},
	"registry.md":        {notRun: 2, minCommands: 10, serve: true},
	"security-model.md":  {},
	"signing.md":         {notRun: 1, minCommands: 8, tools: []string{"cosign", "cosign3"}},
	// The recipes' commands run in recipes_test.go, from the files the pages show.
	"recipes/github-actions.md": {notRun: 2},
	"recipes/gitlab-ci.md":      {notRun: 1},
	"recipes/oras-cosign.md":    {notRun: 2},
	"recipes/registries.md":     {notRun: 1},
}

// docRun is the outcome of one command of a page.
type docRun struct {
	docCommand
	stdout, stderr string
	code           int
}

// TestDocsExamples runs every ```sh block of every page of docs/, in order,
// each page in a directory of its own with bash, as a reader following
// the page would, against a loopback registry ($REG), and checks each
// command's exit code ("# exits N", else 0). Blocks marked not run are
// counted against docPageSetups.
func TestDocsExamples(t *testing.T) {
	pages, err := filepath.Glob("../../docs/*.md")
	recipes, _ := filepath.Glob("../../docs/recipes/*.md")
	pages = append(pages, recipes...)
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs pages: %v", err)
	}
	seen := map[string]bool{}
	for _, path := range pages {
		name, _ := filepath.Rel("../../docs", path)
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			setup, ok := docPageSetups[name]
			if !ok {
				t.Fatalf("docs/%s is not in docPageSetups: add it (with its not-run count)", name)
			}
			runDocPage(t, path, setup)
		})
	}
	for name := range docPageSetups {
		if !seen[name] {
			t.Errorf("docPageSetups names docs/%s, which does not exist", name)
		}
	}
}

// runDocPage runs the examples of one page.
func runDocPage(t *testing.T, path string, setup docPageSetup) {
	t.Helper()
	name := filepath.Base(path)
	blocks := readDocBlocks(t, path)
	var script strings.Builder
	var cmds []docCommand
	notRun := 0
	for _, b := range blocks {
		switch {
		case b.lang == "console" || b.lang == "bash" || b.lang == "shell":
			t.Errorf("%s:%d: a %s block: use sh for commands (run by this test) and text for output", name, b.line, b.lang)
		case b.file != "":
			fmt.Fprintf(&script, "cat > %q <<'OCIWF_DOCS_EOF'\n", b.file)
			for _, l := range b.lines {
				script.WriteString(l.text + "\n")
			}
			script.WriteString("OCIWF_DOCS_EOF\n")
		case b.lang != "sh":
		case b.notRun != "":
			notRun++
			t.Logf("%s:%d: not run: %s", name, b.line, b.notRun)
		default:
			for _, c := range b.commands() {
				i := len(cmds)
				cmds = append(cmds, c)
				// A brace group runs in the shell itself, so variables,
				// cd and background jobs carry over to the next command.
				fmt.Fprintf(&script, "{ %s\n} >\"$OCIWF_DOCS_OUT/%d.out\" 2>\"$OCIWF_DOCS_OUT/%d.err\" </dev/null\n", c.text, i, i)
				fmt.Fprintf(&script, "echo $? >\"$OCIWF_DOCS_OUT/%d.rc\"\n", i)
				fmt.Fprintf(&script, "[ \"$(cat \"$OCIWF_DOCS_OUT/%d.rc\")\" = %d ] || exit 0\n", i, c.exit)
			}
		}
	}
	if notRun != setup.notRun {
		t.Errorf("docs/%s marks %d sh blocks not run, want %d (docPageSetups)", name, notRun, setup.notRun)
	}
	if len(cmds) < setup.minCommands {
		t.Errorf("docs/%s runs %d commands, want at least %d", name, len(cmds), setup.minCommands)
	}
	if t.Failed() || len(cmds) == 0 {
		return
	}

	env := docEnv(t, setup)
	dir := t.TempDir()
	out := t.TempDir()
	env = append(env, "OCIWF_DOCS_OUT="+out, "XDG_STATE_HOME="+filepath.Join(dir, "state"), "HOME="+filepath.Join(dir, "home"))
	if setup.serve {
		env = append(env, "REG="+freeAddr(t), "REPLICA="+freeAddr(t))
	} else {
		env = append(env, "REG="+registrytest.Start(t, registryext.Config{AuditLog: filepath.Join(dir, "audit.jsonl")}).Addr())
	}
	if setup.mirror {
		env = append(env, "MIRROR="+registrytest.StartPlain(t, t.TempDir()))
	}
	if setup.before != nil {
		setup.before(t, blocks, dir)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	sh := exec.CommandContext(ctx, "bash", "--noprofile", "--norc", "-c", script.String())
	sh.Dir, sh.Env = dir, env
	// The page's background jobs (a registry it serves) end with it.
	sh.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	sh.Cancel = func() error { return syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) }
	start := time.Now()
	shOut, err := sh.CombinedOutput()
	if sh.Process != nil {
		syscall.Kill(-sh.Process.Pid, syscall.SIGKILL) //nolint:errcheck // the group may be gone
	}
	t.Logf("docs/%s: %d commands in %s", name, len(cmds), time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("docs/%s: bash: %v\n%s", name, err, shOut)
	}

	var ran []docRun
	for i, c := range cmds {
		read := func(ext string) string {
			b, _ := os.ReadFile(filepath.Join(out, fmt.Sprintf("%d.%s", i, ext)))
			return string(b)
		}
		r := docRun{docCommand: c, stdout: read("out"), stderr: read("err")}
		rc := strings.TrimSpace(read("rc"))
		if rc == "" {
			t.Fatalf("docs/%s:%d: %s\nnever finished (the shell ended in it)\nstdout:\n%s\nstderr:\n%s", name, c.line, c.text, r.stdout, r.stderr)
		}
		r.code, _ = strconv.Atoi(rc)
		if r.code != c.exit {
			t.Fatalf("docs/%s:%d: %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", name, c.line, c.text, r.code, c.exit, r.stdout, r.stderr)
		}
		ran = append(ran, r)
	}
	if setup.check != nil {
		setup.check(t, dir, ran)
	}
}

// moduleRoot is the root of this module's source tree.
func moduleRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// docEnv is the environment of a page's shell: PATH with the ociwf just
// built, ociwf-registry (TestMain's) and the pinned stock tools first;
// SRC, this source tree; COSIGN_PASSWORD, the keys' password. A tool the
// page needs that is missing skips the page, or fails it on CI and with
// OCIWF_REQUIRE_SERVICES=1.
func docEnv(t *testing.T, setup docPageSetup) []string {
	t.Helper()
	root := moduleRoot(t)
	tools := filepath.Join(root, ".tools", "bin")
	path := ociwfBinary(t) + string(os.PathListSeparator) + os.Getenv("PATH") + string(os.PathListSeparator) + tools
	for _, tool := range append([]string{"bash", "curl"}, setup.tools...) {
		if findIn(path, tool) {
			continue
		}
		why := fmt.Sprintf("%s is not installed (scripts/tools.sh installs the pinned stock tools into .tools/bin)", tool)
		if os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" || os.Getenv("CI") == "true" {
			t.Fatal(why)
		}
		t.Skip(why)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "PATH", "REG", "REPLICA", "MIRROR", "SRC", "COSIGN_PASSWORD", "XDG_STATE_HOME", "HOME", "OCIWF_TEST_RUN_MAIN":
			continue
		}
		env = append(env, kv)
	}
	// go keeps its caches where they are, whatever HOME says.
	for _, v := range []string{"GOCACHE", "GOMODCACHE", "GOPATH"} {
		if os.Getenv(v) == "" {
			out, err := exec.Command("go", "env", v).Output()
			if err != nil {
				t.Fatalf("go env %s: %v", v, err)
			}
			env = append(env, v+"="+strings.TrimSpace(string(out)))
		}
	}
	return append(env, "PATH="+path, "SRC="+root, "COSIGN_PASSWORD=docs-example")
}

// findIn reports whether an executable named name is in one of the
// directories of path.
func findIn(path, name string) bool {
	for _, d := range filepath.SplitList(path) {
		if fi, err := os.Stat(filepath.Join(d, name)); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return true
		}
	}
	return false
}

var (
	ociwfBinOnce sync.Once
	ociwfBinDir  string
	ociwfBinErr  error
)

// ociwfBinary builds ociwf once for the test binary and returns the
// directory it is in.
func ociwfBinary(t *testing.T) string {
	t.Helper()
	ociwfBinOnce.Do(func() {
		ociwfBinDir = filepath.Join(testRoot, "docs-bin")
		out, err := exec.Command("go", "build", "-o", filepath.Join(ociwfBinDir, "ociwf"), "ociwf.dev/cmd/ociwf").CombinedOutput()
		if err != nil {
			ociwfBinErr = fmt.Errorf("build ociwf: %v\n%s", err, out)
		}
	})
	if ociwfBinErr != nil {
		t.Fatal(ociwfBinErr)
	}
	return ociwfBinDir
}

// freeAddr returns a loopback address no one listens on at the moment.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// testNameRef is a Go test, fuzz target, benchmark or example named in a
// page.
var testNameRef = regexp.MustCompile(`\b(?:Test|Fuzz|Benchmark|Example)[A-Z][A-Za-z0-9_]*`)

// TestDocsNameRealTests checks that every test, fuzz target, benchmark and
// example a page of docs/ names is defined in a _test.go file of the tree.
func TestDocsNameRealTests(t *testing.T) {
	root := moduleRoot(t)
	defined := map[string]bool{}
	def := regexp.MustCompile(`(?m)^func (?:\([^)]*\) )?((?:Test|Fuzz|Benchmark|Example)[A-Za-z0-9_]*)\(`)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") {
			return filepath.SkipDir
		}
		if !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range def.FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	pages, _ := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	named := 0
	for _, p := range pages {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			for _, name := range testNameRef.FindAllString(sc.Text(), -1) {
				named++
				if !defined[name] {
					t.Errorf("docs/%s:%d names %s, which no _test.go file defines", filepath.Base(p), n, name)
				}
			}
		}
		f.Close()
	}
	if named < 20 {
		t.Errorf("the docs name %d tests; the security model alone names more", named)
	}
}

// buildEmbeddingExample builds the program docs/embedding.md shows
// (main.go) inside this module, as the page's own go build would in a
// module requiring ociwf.dev, into the page's directory as wfrun.
func buildEmbeddingExample(t *testing.T, blocks []docBlock, dir string) {
	t.Helper()
	var src strings.Builder
	for _, b := range blocks {
		if b.file == "main.go" {
			for _, l := range b.lines {
				src.WriteString(l.text + "\n")
			}
		}
	}
	if src.Len() == 0 {
		t.Fatal("docs/embedding.md shows no main.go")
	}
	pkg, err := os.MkdirTemp(".", "_docs-embedding-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(pkg) })
	if err := os.WriteFile(filepath.Join(pkg, "main.go"), []byte(src.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "wfrun"), "./"+filepath.Join(pkg, "main.go"))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("docs/embedding.md: go build of main.go: %v\n%s", err, out)
	}
}

// checkEmbeddingExample checks that the program printed the digest of the
// plan it verified: that of the plan compiled from the same source.
func checkEmbeddingExample(t *testing.T, dir string, _ []docRun) {
	t.Helper()
	out, err := os.ReadFile(filepath.Join(dir, "run.out"))
	if err != nil {
		t.Fatal(err)
	}
	plan, err := os.ReadFile(filepath.Join(dir, "plan.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := "plan " + digest.FromBytes(plan).String() + ": build-test-release 1.4.0"
	if !strings.Contains(string(out), want) {
		t.Fatalf("docs/embedding.md: the program printed\n%s\nwithout %q", out, want)
	}
}
