package report

import (
	"bytes"
	"os"
	"path/filepath"
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
	})
	in, err := readMonitor(path, Options{Until: t0.Add(24 * time.Hour)})
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
	a, viol, err := readAudit(path, Options{Since: t0.Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	if a.Entries != 3 || a.InPeriod != 2 || len(viol) != 2 || !a.ChainVerified || !a.Complete || a.Breaks != 0 || a.LastSeq != 3 {
		t.Fatalf("intact log: %+v %+v", a, viol)
	}
	// Remove the middle line: the chain breaks there, and the trail is
	// not complete.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(raw, []byte("\n"))
	if err := os.WriteFile(path, append(append([]byte(nil), lines[0]...), lines[2]...), 0o600); err != nil {
		t.Fatal(err)
	}
	a, viol, err = readAudit(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.ChainVerified || a.Complete || a.Breaks != 1 || a.FirstBreak == "" || len(viol) != 1 {
		t.Fatalf("log with a line removed: %+v %+v", a, viol)
	}
}
