package main

import (
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
