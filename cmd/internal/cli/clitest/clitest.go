// Package clitest checks the command trees of ociwf's binaries in their
// tests: every command help shows has an example, and every example is a
// command line its binary accepts.
package clitest

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"ociwf.dev/cmd/internal/cli"
)

// Visible returns root and every command under it that help lists: not
// hidden, not deprecated (cobra's help command included), in tree order.
func Visible(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Hidden || c.Deprecated != "" {
			return
		}
		out = append(out, c)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return out
}

// CheckExamples fails t for every visible command of the tree newRoot
// returns (completed with cli.Prepare, as Run completes it) that has no
// Example, and for every example line that runs the binary with a command
// line it would refuse: an unknown command or flag, a bad flag value,
// the wrong number of arguments, a placeholder ("..." or "…") instead of
// a value. Lines that run other programs (a "source <(…)" around the
// binary, say) are not checked, but each example must have one line that
// runs the binary itself.
func CheckExamples(t testing.TB, newRoot func() *cobra.Command) {
	t.Helper()
	root := newRoot()
	cli.Prepare(root)
	name := root.Name()
	n := 0
	for _, c := range Visible(root) {
		if strings.TrimSpace(c.Example) == "" {
			t.Errorf("%q has no Example: its --help shows none", c.CommandPath())
			continue
		}
		lines, err := exampleLines(c.Example)
		if err != nil {
			t.Errorf("%q: example: %v", c.CommandPath(), err)
			continue
		}
		checked := 0
		for _, words := range lines {
			args, ok := commandOf(words, name)
			if !ok {
				continue
			}
			checked++
			n++
			if err := accepts(newRoot, args); err != nil {
				t.Errorf("%q: example %q: %v", c.CommandPath(), strings.Join(words, " "), err)
			}
		}
		if checked == 0 {
			t.Errorf("%q: no line of its example runs %s:\n%s", c.CommandPath(), name, c.Example)
		}
	}
	if n == 0 {
		t.Errorf("no example of %s was checked", name)
	}
}

// CheckHelp runs "PATH --help" through run for every visible command of
// the tree newRoot returns and fails t unless it exits 0 printing the
// command's examples.
func CheckHelp(t testing.TB, newRoot func() *cobra.Command, run func(args ...string) (stdout string, code int)) {
	t.Helper()
	root := newRoot()
	cli.Prepare(root)
	for _, c := range Visible(root) {
		args := append(strings.Fields(c.CommandPath())[1:], "--help")
		stdout, code := run(args...)
		if code != cli.ExitOK || !strings.Contains(stdout, "Examples:") {
			t.Errorf("%s --help: exit %d, no Examples section:\n%s", c.CommandPath(), code, stdout)
		}
	}
}

// CheckCompletion runs "completion SHELL" through run for each shell
// cobra writes scripts for and fails t unless it exits 0 with that
// shell's script for the binary name; the bash script must pass bash -n.
// It also asks the binary, as the scripts do, to complete its commands.
func CheckCompletion(t *testing.T, name string, run func(args ...string) (stdout string, code int)) {
	t.Helper()
	markers := map[string]string{
		"bash":       "complete -o default -F __start_" + name + " " + name,
		"zsh":        "#compdef " + name,
		"fish":       "complete -c " + name + " ",
		"powershell": "Register-ArgumentCompleter -CommandName '" + name + "'",
	}
	for _, shell := range []string{"bash", "zsh", "fish", "powershell"} {
		stdout, code := run("completion", shell)
		if code != cli.ExitOK || !strings.Contains(stdout, markers[shell]) {
			t.Errorf("%s completion %s: exit %d, no %q in its script:\n%.500s", name, shell, code, markers[shell], stdout)
			continue
		}
		if shell != "bash" {
			continue
		}
		script := filepath.Join(t.TempDir(), name+".bash")
		if err := os.WriteFile(script, []byte(stdout), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("bash", "-n", script).CombinedOutput(); err != nil {
			t.Errorf("bash -n on %s completion bash: %v\n%s", name, err, out)
		}
	}
	stdout, code := run("__complete", "")
	if code != cli.ExitOK || !strings.Contains(stdout, "\nversion\t") && !strings.HasPrefix(stdout, "version\t") {
		t.Errorf("%s __complete \"\": exit %d, version not offered:\n%s", name, code, stdout)
	}
}

// accepts parses args as the binary would, on a fresh tree, short of
// running the command.
func accepts(newRoot func() *cobra.Command, args []string) error {
	root := newRoot()
	cli.Prepare(root)
	for _, a := range args {
		if strings.Contains(a, "...") || strings.Contains(a, "…") {
			return fmt.Errorf("%q is a placeholder, not a value", a)
		}
	}
	c, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if c.DisableFlagParsing {
		return nil // its flags are another binary's
	}
	if err := c.ParseFlags(rest); errors.Is(err, pflag.ErrHelp) {
		return nil
	} else if err != nil {
		return err
	}
	for _, check := range []func() error{
		func() error { return c.ValidateArgs(c.Flags().Args()) },
		c.ValidateRequiredFlags,
		c.ValidateFlagGroups,
	} {
		if err := check(); err != nil {
			return err
		}
	}
	return nil
}

var envAssignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

// commandOf returns the arguments a shell command line passes to the
// binary name: after its environment assignments, up to a pipe,
// redirection, list operator or comment; ok is false when the line runs
// another program.
func commandOf(words []string, name string) (args []string, ok bool) {
	for len(words) > 0 && envAssignment.MatchString(words[0]) {
		words = words[1:]
	}
	if len(words) == 0 || words[0] != name {
		return nil, false
	}
	for _, w := range words[1:] {
		switch {
		case w == "|", w == "||", w == "&&", w == ";", w == "&", strings.HasPrefix(w, "#"),
			strings.HasPrefix(w, ">"), strings.HasPrefix(w, "<"), strings.HasPrefix(w, "2>"):
			return args, true
		}
		args = append(args, w)
	}
	return args, true
}

// exampleLines splits a cobra Example into command lines, joining lines
// continued with a trailing backslash, and each into its shell words.
func exampleLines(example string) ([][]string, error) {
	var out [][]string
	var cur string
	for _, line := range strings.Split(example, "\n") {
		line = strings.TrimSpace(line)
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			cur += cont + " "
			continue
		}
		cur += line
		if cur != "" && !strings.HasPrefix(cur, "#") {
			words, err := shellWords(cur)
			if err != nil {
				return nil, err
			}
			out = append(out, words)
		}
		cur = ""
	}
	if cur != "" {
		return nil, fmt.Errorf("the last line %q ends in a backslash", cur)
	}
	return out, nil
}

// shellWords splits line into words as a POSIX shell would, without
// expanding anything: blanks separate words; single quotes keep
// everything; double quotes keep everything but a backslash before " or
// \; a backslash outside quotes keeps the next character.
func shellWords(line string) ([]string, error) {
	var words []string
	var w strings.Builder
	in := false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case ch == ' ' || ch == '\t':
			if in {
				words = append(words, w.String())
				w.Reset()
				in = false
			}
		case ch == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			in = true
		case ch == '\'':
			j := strings.IndexByte(line[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", line)
			}
			w.WriteString(line[i+1 : i+1+j])
			i += j + 1
			in = true
		case ch == '"':
			i++
			for ; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' && i+1 < len(line) && (line[i+1] == '"' || line[i+1] == '\\') {
					i++
				}
				w.WriteByte(line[i])
			}
			if i >= len(line) {
				return nil, fmt.Errorf("unterminated \" in %q", line)
			}
			in = true
		default:
			w.WriteByte(ch)
			in = true
		}
	}
	if in {
		words = append(words, w.String())
	}
	return words, nil
}
