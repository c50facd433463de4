package report

import (
	"bytes"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
)

// FuzzLogs feeds arbitrary bytes to the report as its audit log and as
// the monitor's results log, through the code that reads them for a
// report: no panic, counts that add up, a success rate between 0 and 1,
// and a report that renders.
func FuzzLogs(f *testing.F) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	dir := f.TempDir()
	for i, entries := range [][]audit.Entry{
		{
			{Kind: audit.KindCheck, Time: t0, Repository: "wf/a", Digest: "sha256:b", Operation: "verify", Outcome: audit.OK, Actor: "monitor"},
			{Kind: audit.KindCheck, Time: t0.Add(time.Hour), Repository: "wf/a", Digest: "sha256:b", Operation: "verify", Outcome: audit.Failed, Actor: "monitor", Rule: "signature", Message: "no valid signature"},
			{Kind: audit.KindCheck, Time: t0.Add(2 * time.Hour), Repository: "wf/a", Digest: "sha256:b", Operation: "verify", Outcome: audit.Error, Actor: "monitor"},
		},
		{
			{Time: t0, Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Digest: "sha256:c", Outcome: audit.OK},
			{Time: t0.Add(time.Minute), Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Asked: "sha256:d", Outcome: audit.Denied, Rule: "immutable", Message: "tag exists"},
		},
	} {
		path := filepath.Join(dir, "seed"+string(rune('a'+i)))
		l, err := audit.Open(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, e := range entries {
			if err := l.Append(e); err != nil {
				f.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			f.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte("{}\n{\"kind\":\"check\",\"outcome\":\"failed\"}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		path := filepath.Join(t.TempDir(), "log.jsonl")
		if err := os.WriteFile(path, raw, 0o644); err != nil {
			t.Fatal(err)
		}
		lines := bytes.Count(raw, []byte("\n")) + 1
		opts := Options{Since: t0, Until: t0.Add(24 * time.Hour)}
		repos := []string{"registry.example/wf/a"}
		in, err := readMonitor(path, repos, opts)
		if errors.Is(err, errdef.ErrInvalid) {
			// Request entries only: the wrong log, refused as such.
			if _, _, err := readAudit(path, repos, opts); err != nil {
				t.Fatalf("refused as a results log and as an audit log: %v", err)
			}
			return
		}
		if err != nil {
			return
		}
		if in.Checks != in.OK+in.Failed+in.Errors || len(in.Violations) != in.Failed || in.Checks > lines {
			t.Fatalf("counts do not add up: %+v", in)
		}
		if r := in.SuccessRate; (r == nil) != (in.OK+in.Failed == 0) || r != nil && (math.IsNaN(*r) || *r < 0 || *r > 1) {
			t.Fatalf("success rate %v of %+v", r, in)
		}
		a, viol, err := readAudit(path, repos, opts)
		if errors.Is(err, errdef.ErrInvalid) {
			// Check entries only: the wrong log, refused as such.
			return
		}
		if err != nil {
			t.Fatalf("the log read as results but not as an audit log: %v", err)
		}
		if a.InPeriod > lines || len(viol) > a.InPeriod || a.Breaks < 0 || a.ChainVerified != (a.FirstBreak == "") {
			t.Fatalf("audit figures: %+v, %d violations", a, len(viol))
		}
		n := len(viol)
		if err := Markdown(io.Discard, &Report{Audit: a, Integrity: in, Immutability: Immutability{Violations: &n, ViolationEvents: viol}}); err != nil {
			t.Fatalf("render: %v", err)
		}
	})
}
