package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// docExample is one command line of a documentation page.
type docExample struct {
	line int
	cmd  string
	exit int
}

// docPage is what a page's examples need: its commands in order, and the
// files it shows (a fenced block right after <!-- file: NAME -->).
type docPage struct {
	commands []docExample
	files    map[string]string
}

var exitsComment = regexp.MustCompile(`\s+#\s*exits (\d+)\b.*$`)

// readDocPage extracts the ociwf command lines of the ```sh blocks of a
// page, with the exit code a trailing "# exits N" comment expects (0
// without one), and the files it shows.
func readDocPage(t *testing.T, path string) docPage {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	page := docPage{files: map[string]string{}}
	sc := bufio.NewScanner(f)
	var fence, file string
	var body strings.Builder
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case fence == "" && strings.HasPrefix(line, "<!-- file: "):
			file = strings.TrimSuffix(strings.TrimPrefix(line, "<!-- file: "), " -->")
		case fence == "" && strings.HasPrefix(line, "```"):
			fence = strings.TrimPrefix(line, "```")
			if fence == "" {
				fence = "text"
			}
			body.Reset()
		case fence != "" && line == "```":
			if file != "" {
				page.files[file] = body.String()
			}
			fence, file = "", ""
		case fence == "sh":
			cmd := strings.TrimSpace(line)
			if cmd == "" || strings.HasPrefix(cmd, "#") {
				continue
			}
			ex := docExample{line: n, cmd: cmd}
			if m := exitsComment.FindStringSubmatch(cmd); m != nil {
				ex.exit, _ = strconv.Atoi(m[1])
				ex.cmd = strings.TrimSpace(cmd[:len(cmd)-len(m[0])])
			}
			page.commands = append(page.commands, ex)
		case fence != "":
			body.WriteString(line + "\n")
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return page
}

// docSection reads the section headed "## heading" of the docs page file
// (up to the next "## " heading), changes into a fresh directory with the
// workflows its examples use (workflow.yaml, build-test-release 1.4.0, and
// workflow-1.5.yaml) and the key release.key, as the page's first example
// makes them, a state directory of its own and COSIGN_PASSWORD set, and
// returns the section's commands; it fails with fewer than min.
func docSection(t *testing.T, file, heading string, min int) docPage {
	t.Helper()
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(raw), "\n## "+heading+"\n")
	if !ok {
		t.Fatalf("%s has no %s section", file, heading)
	}
	if i := strings.Index(section, "\n## "); i >= 0 {
		section = section[:i]
	}
	src, err := os.ReadFile(filepath.Join(samples, "build-test-release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Chdir(dir)
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("COSIGN_PASSWORD", "pw")
	next := strings.Replace(string(src), "version: 1.4.0", "version: 1.5.0", 1)
	for name, body := range map[string]string{"section.md": section, "workflow.yaml": string(src), "workflow-1.5.yaml": next} {
		if err := os.WriteFile(name, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", "release"); code != 0 {
		t.Fatal(stderr)
	}
	page := readDocPage(t, "section.md")
	if len(page.commands) < min {
		t.Fatalf("the %s section of %s has %d commands", heading, file, len(page.commands))
	}
	return page
}

// runDocCommands runs each of page's ociwf commands in order, with $NAME
// taken from vars, checks its exit code ("# exits N", else 0) and, with
// check, whatever else the caller asks of its outcome; "> FILE" at the end
// writes the command's output to FILE.
func runDocCommands(t *testing.T, where string, page docPage, vars map[string]string, check func(ex docExample, stdout, stderr string)) {
	t.Helper()
	for _, ex := range page.commands {
		args, err := shellWords(ex.cmd, func(k string) string { return vars[k] })
		if err != nil || len(args) == 0 || args[0] != "ociwf" {
			t.Fatalf("%s:%d: %q is not an ociwf command (%v)", where, ex.line, ex.cmd, err)
		}
		var into string
		if n := len(args); n > 2 && args[n-2] == ">" {
			into, args = args[n-1], args[:n-2]
		}
		stdout, stderr, code := runCLI(t, args[1:]...)
		if code != ex.exit {
			t.Fatalf("%s:%d: %s\nexit %d, want %d\nstdout:\n%s\nstderr:\n%s", where, ex.line, ex.cmd, code, ex.exit, stdout, stderr)
		}
		if into != "" {
			if err := os.WriteFile(into, []byte(stdout), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if check != nil {
			check(ex, stdout, stderr)
		}
	}
}
