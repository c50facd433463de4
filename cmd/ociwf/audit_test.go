package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

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
	out, stderr, code := cli(t, "audit", "verify", path)
	if code != 0 || !strings.Contains(out, "3 entries, chain intact; 1 policy violations") {
		t.Fatalf("exit %d: %s %s", code, out, stderr)
	}
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"outcome":"denied"`, `"outcome":"ok"`, 1)
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o600)
	out, _, code = cli(t, "audit", "verify", "--output", "json", path)
	if code != exitVerification || !strings.Contains(out, `"line": 2`) {
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

	out, _, code := cli(t, "audit", "verify", path)
	if code != exitVerification || !strings.Contains(out, "2 breaks") || !strings.Contains(out, "line 2: hash") || !strings.Contains(out, "line 4: hash") {
		t.Fatalf("exit %d: %s", code, out)
	}
	out, _, code = cli(t, "audit", "verify", "--output", "json", path)
	var rep struct {
		Broken audit.Break   `json:"broken"`
		Breaks []audit.Break `json:"breaks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != exitVerification || rep.Broken.Line != 2 || len(rep.Breaks) != 2 || rep.Breaks[1].Line != 4 {
		t.Fatalf("exit %d: %v %s", code, err, out)
	}

	out, stderr, code := cli(t, "audit", "verify", filepath.Join("..", "..", "policy", "audit", "testdata", "v1.jsonl"))
	if code != 0 || !strings.Contains(out, "5 entries, chain intact; 1 policy violations") {
		t.Fatalf("old log: exit %d: %s %s", code, out, stderr)
	}
}
