package report

import (
	"strings"
	"testing"
	"time"

	"ociwf.dev/policy/lifecycle"
)

// The page escapes what it shows (messages come from registry clients and
// signers) and says "not computed" for what the report left out.
func TestHTMLEscapesAndShowsGaps(t *testing.T) {
	n := 1
	r := &Report{
		Generated:    time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Repositories: []string{"registry.example/wf"},
		Lifecycle:    Lifecycle{Versions: 1, States: map[lifecycle.State]int{lifecycle.Published: 1}, Signers: []string{`<img src=x onerror=alert(1)>`}},
		Immutability: Immutability{Published: 1, Violations: &n, ViolationEvents: []Violation{{
			Time: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Actor: "mallory", Repository: "wf", Operation: "manifest-put",
			Message: `</td></tr></table><script>alert("x")</script>`,
		}}},
	}
	var b strings.Builder
	if err := HTML(&b, r); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, bad := range []string{"<script", "<img"} {
		if strings.Contains(page, bad) {
			t.Errorf("the page holds %s unescaped", bad)
		}
	}
	for _, want := range []string{"&lt;script&gt;", `data-metric="immutability.coverage">not measurable`, "Not computed: no monitor results log given."} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
}

// series picks the smallest width that keeps the buckets within
// maxBuckets and counts each check in its bucket.
func TestSeries(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 10, 7, 0, 0, time.UTC)
	var cs []check
	for i := range 10 {
		cs = append(cs, check{t0.Add(time.Duration(i) * 20 * time.Minute), "ok"})
	}
	cs = append(cs, check{t0.Add(41 * time.Minute), "failed"}, check{t0.Add(42 * time.Minute), "error"})
	w, s := series(cs)
	if time.Duration(w) != 5*time.Minute || len(s) != 37 {
		t.Fatalf("width %v, %d buckets", time.Duration(w), len(s))
	}
	if !s[0].Start.Equal(time.Date(2026, 3, 1, 10, 5, 0, 0, time.UTC)) {
		t.Errorf("first bucket starts %v", s[0].Start)
	}
	b := s[8] // 10:45-10:50: the 10:47 ok, failed and error checks
	if b.OK != 1 || b.Failed != 1 || b.Errors != 1 || b.SuccessRate == nil || *b.SuccessRate != 0.5 {
		t.Errorf("bucket %v", b)
	}
	if s[1].SuccessRate != nil {
		t.Error("an empty bucket has a success rate")
	}
	_, long := series([]check{{t0, "ok"}, {t0.Add(5 * 365 * 24 * time.Hour), "ok"}})
	if len(long) > maxBuckets {
		t.Errorf("%d buckets over five years", len(long))
	}
}

// Recorded text shows as text in Markdown and HTML: no tag, link or
// emphasis, no terminal escape, no reordering by bidirectional controls.
func TestDisplayedTextIsInert(t *testing.T) {
	hostile := "\x1b[31mred</td><script>x</script> [link](http://evil) **bold** live\u202eevil"
	r := &Report{
		Lifecycle: Lifecycle{States: map[lifecycle.State]int{}, Exceptions: []Exception{{Repository: "r", Tag: "1", Reason: hostile, Justification: "j", Impact: "every run", Remediation: "rotate"}}},
	}
	var md, page strings.Builder
	if err := Markdown(&md, r); err != nil {
		t.Fatal(err)
	}
	if err := HTML(&page, r); err != nil {
		t.Fatal(err)
	}
	// html/template writes + as &#43;.
	for name, out := range map[string]string{"markdown": md.String(), "html": strings.ReplaceAll(page.String(), "&#43;", "+")} {
		for _, bad := range []string{"\x1b", "\u202e", "<script", "</td><script"} {
			if strings.Contains(out, bad) {
				t.Errorf("%s holds %q", name, bad)
			}
		}
		if !strings.Contains(out, "U+001B") || !strings.Contains(out, "U+202E") {
			t.Errorf("%s does not show the hidden characters", name)
		}
	}
	for _, want := range []string{`\[link\](http://evil)`, `\*\*bold\*\*`, "&lt;script&gt;", "| every run | rotate |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("markdown lacks %s:\n%s", want, md.String())
		}
	}
	if r.Lifecycle.Exceptions[0].Reason != hostile {
		t.Error("displaying the report changed it")
	}
}
