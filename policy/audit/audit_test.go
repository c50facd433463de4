package audit_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/policy/audit"
)

func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e := audit.Entry{Actor: "127.0.0.1", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 201, Outcome: audit.OK}
		if i%3 == 2 {
			e.Status, e.Outcome, e.Rule, e.Message = 403, audit.Denied, "semver", "tag 1.0.0 is immutable"
		}
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func verify(t *testing.T, b []byte) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestChain(t *testing.T) {
	path := writeLog(t, 6)
	// Reopening continues the chain.
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(audit.Entry{Actor: "a", Operation: "tag-delete", Status: 202, Outcome: audit.OK}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	rep := verify(t, b)
	if rep.Broken != nil || rep.Entries != 7 || rep.Denied != 2 {
		t.Fatalf("report %+v", rep)
	}

	lines := strings.SplitAfter(string(b), "\n")
	tamper := map[string]struct {
		edit func([]string) []string
		line int
	}{
		"edited":    {func(l []string) []string { l[3] = strings.Replace(l[3], `"wf/a"`, `"wf/b"`, 1); return l }, 4},
		"removed":   {func(l []string) []string { return append(l[:2:2], l[3:]...) }, 3},
		"reordered": {func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2},
		"garbage":   {func(l []string) []string { l[5] = "{not json\n"; return l }, 6},
		"denial hidden": {func(l []string) []string {
			l[2] = strings.Replace(l[2], `"outcome":"denied"`, `"outcome":"ok"`, 1)
			return l
		}, 3},
	}
	for name, c := range tamper {
		got := verify(t, []byte(strings.Join(c.edit(append([]string(nil), lines...)), "")))
		if got.Broken == nil || got.Broken.Line != c.line {
			t.Errorf("%s: %+v, want a break at line %d", name, got.Broken, c.line)
		}
	}

	// A broken log is not appended to.
	os.WriteFile(path, []byte(strings.Replace(string(b), `"wf/a"`, `"wf/b"`, 1)), 0o640)
	if _, err := audit.Open(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("open a broken log: %v", err)
	}
}

// Verify never panics, and a log it accepts re-verifies to the same report.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"time":"2026-11-27T13:00:00Z","actor":"a","operation":"manifest-put","status":201,"outcome":"ok","prev":"` + audit.Genesis + `","hash":"sha256:00"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := audit.Verify(bytes.NewReader(b))
		if err != nil {
			return
		}
		if rep.Denied > rep.Entries || (rep.Broken != nil && rep.Broken.Line < 1) {
			t.Fatalf("report %+v", rep)
		}
	})
}
