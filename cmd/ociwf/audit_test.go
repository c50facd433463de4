package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/audit"
)

func TestAuditVerify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, outcome := range []string{audit.OK, audit.Denied, audit.OK} {
		if err := l.Append(audit.Entry{Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 201, Outcome: outcome}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	out, stderr, code := runCLI(t, "audit", "verify", path)
	if code != 0 || !strings.Contains(out, "3 entries, chain intact; 1 policy violations") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"outcome":"denied"`, `"outcome":"ok"`, 1)
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)
	out, _, code = runCLI(t, "audit", "verify", "--output", "json", path)
	if code != cli.ExitVerification || !strings.Contains(out, `"line": 2`) {
		t.Fatalf("tampered log: exit %d: %s", code, out)
	}
}

// Every break is listed, in the human output and in JSON; a log written
// before entries were hashed over their exact bytes verifies.
func TestAuditVerifyBreaks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if err := l.Append(audit.Entry{Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 201, Outcome: audit.OK}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"wf/a"`, `"wf/b"`, 1)
	lines[3] = strings.Replace(lines[3], `"wf/a"`, `"wf/b"`, 1)
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)

	out, _, code := runCLI(t, "audit", "verify", path)
	if code != cli.ExitVerification || !strings.Contains(out, "2 breaks") || !strings.Contains(out, "line 2: hash") || !strings.Contains(out, "line 4: hash") {
		t.Fatalf("exit %d: %s", code, out)
	}
	out, _, code = runCLI(t, "audit", "verify", "--output", "json", path)
	var rep struct {
		Broken audit.Break   `json:"broken"`
		Breaks []audit.Break `json:"breaks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitVerification || rep.Broken.Line != 2 || len(rep.Breaks) != 2 || rep.Breaks[1].Line != 4 {
		t.Fatalf("exit %d: %v %s", code, err, out)
	}

	out, stderr, code := runCLI(t, "audit", "verify", filepath.Join("..", "..", "policy", "audit", "testdata", "v1.jsonl"))
	if code != 0 || !strings.Contains(out, "5 entries, chain intact; 1 policy violations") {
		t.Fatalf("old log: exit %d: %s %s", code, out, stderr)
	}
}

// The logs of several replicas are checked together: a line per log and a
// total, exit 3 when any is broken, and JSON with every log and the total.
func TestAuditVerifySet(t *testing.T) {
	dir := t.TempDir()
	var paths []string
	for i := range 3 {
		path := filepath.Join(dir, "replica-"+string(rune('a'+i))+".jsonl")
		l, err := audit.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		for j := 0; j <= i; j++ {
			if err := l.Append(audit.Entry{Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 403, Outcome: audit.Denied}); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		paths = append(paths, path)
	}
	out, stderr, code := runCLI(t, append([]string{"audit", "verify"}, paths...)...)
	if code != 0 || !strings.Contains(out, "replica-c.jsonl: 3 entries, chain intact") || !strings.Contains(out, "total: 3 logs, 0 broken; 6 entries intact, 6 policy violations") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(paths[1])
	os.WriteFile(paths[1], []byte(strings.Replace(string(b), `"wf/a"`, `"wf/b"`, 1)), 0o600)
	out, stderr, code = runCLI(t, append([]string{"audit", "verify"}, paths...)...)
	if code != cli.ExitVerification || !strings.Contains(out, "replica-b.jsonl: chain broken, 1 break") || !strings.Contains(out, "total: 3 logs, 1 broken") || !strings.Contains(stderr, "replica-b.jsonl") {
		t.Fatalf("one log broken: exit %d: %s %s", code, out, stderr)
	}
	if _, stderr, code := runCLI(t, "audit", "verify", paths[0], filepath.Join(dir, "replica-z.jsonl")); code != cli.ExitUsage || !strings.Contains(stderr, "replica-z.jsonl") {
		t.Fatalf("a missing log: exit %d: %s", code, stderr)
	}
	out, _, code = runCLI(t, append([]string{"audit", "verify", "--output", "json"}, paths...)...)
	var rep struct {
		Logs []struct {
			File    string       `json:"file"`
			Entries int          `json:"entries"`
			Broken  *audit.Break `json:"broken"`
		} `json:"logs"`
		Total struct{ Logs, Broken, Breaks, Entries, Violations int } `json:"total"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != cli.ExitVerification || len(rep.Logs) != 3 || rep.Logs[1].Broken == nil || rep.Logs[0].Broken != nil ||
		rep.Total.Logs != 3 || rep.Total.Broken != 1 || rep.Total.Breaks != 1 {
		t.Fatalf("json: exit %d: %v %s", code, err, out)
	}
}

// One log given twice, or two copies of one chain, would be counted
// twice: the first is a mistake in the command line (exit 2), the second
// a set that does not hold what it claims (exit 3).
func TestAuditVerifyRefusesOneLogTwice(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "replica-a.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := l.Append(audit.Entry{Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 403, Outcome: audit.Denied}); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()
	link := filepath.Join(dir, "link.jsonl")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	for _, again := range []string{path, link} {
		_, stderr, code := runCLI(t, "audit", "verify", path, again)
		if code != cli.ExitUsage || !strings.Contains(stderr, path+" and "+again+" are the same file") {
			t.Errorf("%s and %s: exit %d: %s", path, again, code, stderr)
		}
	}
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	cp := filepath.Join(dir, "copy.jsonl")
	os.WriteFile(cp, []byte(lines[0]), 0o600) // an older copy: the first entry only
	out, stderr, code := runCLI(t, "audit", "verify", path, cp)
	if code != cli.ExitVerification || !strings.Contains(stderr, "audit logs "+path+" and "+cp+" are the same chain (copies?)") || strings.Contains(out, "total: 2 logs") {
		t.Errorf("a copy: exit %d: %s %s", code, out, stderr)
	}
}
