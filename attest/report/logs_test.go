package report

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"ociwf.dev/policy/audit"
)

func writeLog(t *testing.T, entries []audit.Entry) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "log.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMonitorMetrics(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	check := func(at time.Duration, digest, outcome string) audit.Entry {
		return audit.Entry{Kind: audit.KindCheck, Time: t0.Add(at), Repository: "wf/a", Digest: digest, Operation: "verify", Outcome: outcome, Actor: "monitor"}
	}
	path := writeLog(t, []audit.Entry{
		check(0, "sha256:a", audit.Failed),                                       // no earlier ok: not measurable
		check(time.Hour, "sha256:b", audit.OK),                                   // b's last ok
		check(2*time.Hour, "sha256:b", audit.Error),                              // could not run: counts in neither
		check(3*time.Hour, "sha256:b", audit.Failed),                             // detected 2h after the last ok
		check(4*time.Hour, "sha256:b", audit.Failed),                             // a repeat
		check(5*time.Hour, "sha256:b", audit.OK),                                 // fixed
		check(30*time.Hour, "sha256:b", audit.Failed),                            // outside the period
		{Time: t0, Actor: "x", Operation: "manifest-put", Outcome: audit.Denied}, // a request: not a check
		{Kind: audit.KindCheck, Time: t0, Repository: "wf/other", Digest: "sha256:c", Operation: "verify", Outcome: audit.OK, Actor: "monitor"}, // not reported
	})
	in, err := readMonitor(path, []string{"registry.example/wf/a"}, Options{Until: t0.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if in.Checks != 6 || in.OK != 2 || in.Failed != 3 || in.Errors != 1 || in.SuccessRate == nil || *in.SuccessRate != 0.4 || !in.LogVerified {
		t.Fatalf("counts: %+v", in)
	}
	if len(in.Violations) != 3 {
		t.Fatalf("violations: %+v", in.Violations)
	}
	a, b, rep := in.Violations[0], in.Violations[1], in.Violations[2]
	if a.TimeToDetect != nil || a.LastOK != nil || a.Repeat {
		t.Errorf("first failure without an ok check before it: %+v", a)
	}
	if b.TimeToDetect == nil || time.Duration(*b.TimeToDetect) != 2*time.Hour || !b.LastOK.Equal(t0.Add(time.Hour)) {
		t.Errorf("time to detect: %+v", b)
	}
	if !rep.Repeat || rep.TimeToDetect != nil {
		t.Errorf("repeat: %+v", rep)
	}
	var md bytes.Buffer
	if err := Markdown(&md, &Report{Integrity: in}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"not measurable (no earlier ok check)", "| 2h0m0s |", "repeat of an earlier failure", "Check success rate: 40.0%"} {
		if !bytes.Contains(md.Bytes(), []byte(want)) {
			t.Errorf("markdown lacks %q:\n%s", want, md.String())
		}
	}
}

func TestAuditMetricsBrokenChain(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := writeLog(t, []audit.Entry{
		{Time: t0, Actor: "a", Repository: "wf/a", Operation: "manifest-put", Outcome: audit.OK},
		{Time: t0.Add(time.Hour), Actor: "a", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Outcome: audit.Denied, Rule: "semver"},
		{Time: t0.Add(2 * time.Hour), Actor: "a", Repository: "wf/a", Operation: "manifest-put", Outcome: audit.Denied},
	})
	repos := []string{"registry.example/wf/a"}
	a, viol, err := readAudit(path, repos, Options{Since: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Entries != 3 || a.InPeriod != 2 || len(viol) != 2 || !a.ChainVerified || !a.Complete || a.Breaks != 0 || a.LastSeq != 3 {
		t.Fatalf("intact log: %+v %+v", a, viol)
	}
	// Remove the middle line: the chain breaks there, and the trail is
	// not complete. The line after the removed one is the break: it does
	// not verify, so its denial is not counted.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if err := os.WriteFile(path, append(append([]byte(nil), lines[0]...), lines[2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	a, viol, err = readAudit(path, repos, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ChainVerified || a.Complete || a.Breaks != 1 || a.FirstBreak == "" || len(viol) != 0 || a.Entries != 1 {
		t.Fatalf("log with a line removed: %+v %+v", a, viol)
	}
}

// Only entries that verify count: an over-long line, an edited outcome or
// a line of the wrong log changes no figure, and reading goes on after
// them.
func TestLogsCountVerifiedEntriesOnly(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	repos := []string{"registry.example/wf/a"}
	var es []audit.Entry
	for i := range 6 {
		es = append(es, audit.Entry{Kind: audit.KindCheck, Time: t0.Add(time.Duration(i) * time.Hour), Repository: "wf/a", Digest: "sha256:a", Tag: "1.0.0", Operation: "verify", Outcome: audit.OK, Actor: "monitor"})
	}
	es[3].Outcome, es[3].Rule = audit.Failed, "blob-digest"
	path := writeLog(t, es)
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	long := append(bytes.Repeat([]byte("x"), audit.MaxLineBytes+10), '\n')
	// An over-long line after the first, then an ok turned into a failure.
	edited := bytes.Replace(lines[1], []byte(`"outcome":"ok"`), []byte(`"outcome":"failed"`), 1)
	out := bytes.Join([][]byte{lines[0], long, edited, lines[2], lines[3], lines[4], lines[5]}, nil)
	if err := os.WriteFile(path, out, 0o600); err != nil {
		t.Fatal(err)
	}
	in, err := readMonitor(path, repos, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Lines 0, 2, 3, 4, 5 of the original verify after the breaks, less
	// line 1 (edited); the one failure is line 3's.
	if in.LogVerified || in.Checks != 5 || in.Failed != 1 || in.OK != 4 {
		t.Fatalf("counts from a log with an over-long and an edited line: %+v", in)
	}
	if _, _, err := readAudit(path, repos, Options{}); err == nil || !strings.Contains(err.Error(), "no entry of the registry's audit log") {
		t.Fatalf("a results log read as the audit log: %v", err)
	}
}
