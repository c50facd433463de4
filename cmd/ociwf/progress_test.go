package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/creack/pty"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// processRun is what one run of ociwf in a process of its own printed.
type processRun struct {
	stdout string
	// stderr is what the terminal showed, when stderr was one.
	stderr string
	code   int
}

// runProcess runs ociwf (the test binary run as ociwf) with args in a
// process of its own, with env set over the test's environment, from
// which TERM and NO_COLOR are removed first. With tty its stderr is a
// pseudo-terminal of 120 columns, else a pipe; stdout is a pipe.
func runProcess(t *testing.T, tty bool, env []string, args ...string) processRun {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TERM=") && !strings.HasPrefix(kv, "NO_COLOR=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(append(cmd.Env, runMainEnv+"=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	if !tty {
		cmd.Stderr = &stderr
		err := cmd.Run()
		if _, exited := err.(*exec.ExitError); err != nil && !exited {
			t.Fatal(err)
		}
		return processRun{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
	}
	ptmx, term, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer ptmx.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 120}); err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = term
	err = cmd.Start()
	term.Close() // the child holds it now
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan struct{})
	go func() {
		defer close(read)
		_, _ = io.Copy(&stderr, ptmx) // ends (EIO) once the child closed the terminal
	}()
	err = cmd.Wait()
	<-read
	if _, exited := err.(*exec.ExitError); err != nil && !exited {
		t.Fatal(err)
	}
	return processRun{stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()}
}

// colourCodes are the escape sequences of the progress line's colour.
var colourCodes = strings.NewReplacer("\x1b[31m", "", "\x1b[0m", "")

// frame matches one drawing of a progress line, as the terminal shows it.
var frame = regexp.MustCompile(`\r(verify|copy|monitor|publish) \[[= ]{20}\] (\d+)/(\d+) (versions|workflows)[^\r]*`)

// checkProgress checks what a terminal showed of an operation's progress
// line: drawn more than once, the last drawing counting every item and
// the failures, then cleared, and no log line run into it.
func checkProgress(t *testing.T, shown, label, unit string, total, failed int) {
	t.Helper()
	plain := colourCodes.Replace(shown)
	var last string
	draws := 0
	for _, m := range frame.FindAllStringSubmatch(plain, -1) {
		if strings.Contains(m[0], `"level"`) || strings.Contains(m[0], "\n") {
			t.Errorf("a line was written into the progress line: %q", m[0])
		}
		if m[1] == label {
			last = m[0]
			draws++
		}
	}
	if draws < 2 {
		t.Fatalf("the %s progress line was drawn %d times, want it redrawn:\n%q", label, draws, shown)
	}
	want := fmt.Sprintf("\r%s [%s] %d/%d %s", label, strings.Repeat("=", 20), total, total, unit)
	if failed > 0 {
		want += fmt.Sprintf(", %d failed", failed)
	}
	if !strings.HasPrefix(last, want) {
		t.Fatalf("the last %s progress line is %q, want it to start with %q", label, last, want)
	}
	// Cleared: overwritten with spaces and the cursor back at the start.
	i := strings.LastIndex(plain, last) + len(last)
	cleared := regexp.MustCompile(`^\r +\r`).FindString(plain[i:])
	if cleared == "" {
		t.Fatalf("the %s progress line was not cleared at the end: %q", label, plain[i:])
	}
	if n := len(cleared) - 2; n < len(last)-1 {
		t.Fatalf("%d spaces clear a line of %d columns", n, len(last)-1)
	}
}

// noProgress checks that out shows no progress line at all.
func noProgress(t *testing.T, what, out string) {
	t.Helper()
	if frame.MatchString(colourCodes.Replace(out)) || strings.Contains(out, "\r") {
		t.Fatalf("%s shows progress:\n%q", what, out)
	}
}

// Long operations draw their progress on stderr when it is a terminal,
// and only then: a pseudo-terminal sees the line redrawn with the counts,
// the failures (red unless NO_COLOR) and the line cleared at the end; a
// pipe, TERM=dumb and --output json see none of it.
func TestProgressOnTerminal(t *testing.T) {
	keys := newKeys(t) // COSIGN_PASSWORD is in the environment the processes get
	host := registrytest.New(t)
	repo := host + "/tty/build"
	for _, tag := range []string{"1.0.0", "1.1.0"} {
		if _, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", samples+"build-test-release.yaml", repo+":"+tag); code != 0 {
			t.Fatalf("publish %s: %s", tag, stderr)
		}
	}
	pushDraft(t, "fan-out-fan-in.yaml", repo+":2.0.0") // unsigned: fails verification
	workflows := variants(t, 3)

	runs := 0
	fresh := func(name string) string { runs++; return fmt.Sprintf("%s/%s-%d", host, name, runs) }
	cases := []struct {
		name   string
		args   func() []string // new destinations every run
		code   int
		labels []string // the progress lines, in order
		unit   string
		failed []int // per label
	}{
		{"verify --all", func() []string {
			return []string{"verify", "--all", "--plain-http", "--no-state", "--key", keys + ".pub", repo}
		}, cli.ExitVerification, []string{"verify"}, "versions", []int{1}},
		{"monitor --once", func() []string {
			return []string{"monitor", "--once", "--all", "--plain-http", "--no-state", "--key", keys + ".pub", repo}
		}, cli.ExitVerification, []string{"monitor"}, "versions", []int{1}},
		{"copy --all", func() []string {
			return []string{"copy", "--all", "--plain-http", "--no-state", "--key", keys + ".pub", "--signed-identity", repo, repo, fresh("mirror") + "/build"}
		}, cli.ExitVerification, []string{"copy", "verify"}, "versions", []int{0, 1}},
		{"bulk publish", func() []string {
			return []string{"publish", "--plain-http", "--offline", "--key", keys + ".key", workflows, fresh("bulk")}
		}, cli.ExitOK, []string{"publish"}, "workflows", []int{0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tty := runProcess(t, true, []string{"TERM=xterm"}, c.args()...)
			if tty.code != c.code {
				t.Fatalf("on a terminal: exit %d, want %d\n%s%q", tty.code, c.code, tty.stdout, tty.stderr)
			}
			for i, label := range c.labels {
				checkProgress(t, tty.stderr, label, c.unit, 3, c.failed[i])
			}
			if slices.Max(c.failed) > 0 && (strings.Contains(tty.stderr, ", 1 failed") || !strings.Contains(tty.stderr, ", \x1b[31m1 failed\x1b[0m")) {
				t.Fatalf("the failure count is not red on a terminal:\n%q", tty.stderr)
			}
			noProgress(t, "stdout", tty.stdout)

			piped := runProcess(t, false, []string{"TERM=xterm"}, c.args()...)
			if piped.code != c.code {
				t.Fatalf("on a pipe: exit %d, want %d\n%s%s", piped.code, c.code, piped.stdout, piped.stderr)
			}
			noProgress(t, "stderr on a pipe", piped.stderr)
			noProgress(t, "stdout", piped.stdout)
		})
	}

	verify := cases[0].args()
	t.Run("NO_COLOR", func(t *testing.T) {
		for _, env := range [][]string{{"TERM=xterm", "NO_COLOR=1"}, {"NO_COLOR=yes"}} {
			r := runProcess(t, true, env, verify...)
			if r.code != cli.ExitVerification {
				t.Fatalf("%v: exit %d\n%q", env, r.code, r.stderr)
			}
			checkProgress(t, r.stderr, "verify", "versions", 3, 1)
			if strings.Contains(r.stderr, "\x1b[") {
				t.Fatalf("%v: an escape sequence on the terminal:\n%q", env, r.stderr)
			}
		}
	})
	t.Run("TERM=dumb", func(t *testing.T) {
		r := runProcess(t, true, []string{"TERM=dumb"}, verify...)
		if r.code != cli.ExitVerification || !strings.Contains(r.stderr, "1 of 3 versions failed verification") {
			t.Fatalf("exit %d\n%q", r.code, r.stderr)
		}
		noProgress(t, "a dumb terminal", strings.ReplaceAll(r.stderr, "\r\n", "\n"))
	})
	t.Run("--output json", func(t *testing.T) {
		r := runProcess(t, true, []string{"TERM=xterm"}, append(verify, "--output", "json")...)
		var sum struct{ Versions, Failed int }
		if r.code != cli.ExitVerification || json.Unmarshal([]byte(r.stdout), &sum) != nil || sum.Versions != 3 || sum.Failed != 1 {
			t.Fatalf("exit %d\n%s", r.code, r.stdout)
		}
		noProgress(t, "--output json", strings.ReplaceAll(r.stderr, "\r\n", "\n"))
	})
	// On a pipe, stderr is byte for byte what it is in-process, where it
	// is no terminal either.
	t.Run("pipe", func(t *testing.T) {
		r := runProcess(t, false, []string{"TERM=xterm"}, verify...)
		_, want, code := runCLI(t, verify...)
		if r.code != code || r.stderr != want {
			t.Fatalf("exit %d, stderr\n%q\nin-process: exit %d, stderr\n%q", r.code, r.stderr, code, want)
		}
	})
}
