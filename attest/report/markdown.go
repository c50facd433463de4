package report

import (
	"bufio"
	"fmt"
	"io"
	"strings"
	"time"

	"ociwf.dev/policy/lifecycle"
)

const timeFormat = "2006-01-02T15:04:05Z"

func ts(t time.Time) string { return t.UTC().Format(timeFormat) }

// mdEscaper escapes what Markdown and the HTML it may hold would
// interpret: a recorded reason or message renders as the text it is, never
// as a link, emphasis, a tag or a table cell boundary.
var mdEscaper = strings.NewReplacer("\\", `\\`, "`", "\\`", "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`,
	"<", "&lt;", ">", "&gt;", "&", "&amp;", "|", `\|`, "\n", " ", "\r", " ")

// text escapes free text for Markdown.
func text(s string) string { return mdEscaper.Replace(s) }

// cell escapes a table cell.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return text(s)
}

func percent(f *float64) string {
	if f == nil {
		return "not measurable (nothing to count)"
	}
	return fmt.Sprintf("%.1f%%", *f*100)
}

// Markdown writes r as a Markdown document. Recorded text (reasons,
// messages, names) is escaped, and control and bidirectional formatting
// characters are shown as U+XXXX.
func Markdown(w io.Writer, r *Report) error {
	r, err := displayed(r)
	if err != nil {
		return err
	}
	b := bufio.NewWriter(w)
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# Compliance report\n\n")
	p("- Generated: %s\n", ts(r.Generated))
	since, until := "open", "open"
	if r.Period.Since != nil {
		since = ts(*r.Period.Since)
	}
	if r.Period.Until != nil {
		until = ts(*r.Period.Until)
	}
	p("- Period: %s to %s\n", since, until)
	p("- Repositories: %s\n\n", text(strings.Join(r.Repositories, ", ")))

	l := r.Lifecycle
	p("## Lifecycle\n\n%d version(s), by current verified state:\n\n| State | Versions |\n|---|---|\n", l.Versions)
	for _, s := range lifecycle.States() {
		p("| %s | %d |\n", s, l.States[s])
	}
	p("\nSigners used: %s\n\n", text(orNone(l.Signers)))
	p("Compliance exceptions (emergency retirements) in the period: %d\n\n", l.ExceptionCount)
	if len(l.Exceptions) > 0 {
		p("| Version | Time | Reason | Justification | Impact | Remediation | Signers |\n|---|---|---|---|---|---|---|\n")
		for _, e := range l.Exceptions {
			p("| %s:%s | %s | %s | %s | %s | %s | %s |\n", cell(e.Repository), cell(e.Tag), ts(e.Time), cell(e.Reason), cell(e.Justification),
				cell(e.Impact), cell(e.Remediation), cell(strings.Join(e.Signers, ", ")))
		}
		p("\n")
	}
	p("Deprecated versions still used by a published or deprecated version: %d\n\n", l.DeprecatedReferenced)
	if len(l.Referenced) > 0 {
		p("| Workflow | State | Reason | Used by |\n|---|---|---|---|\n")
		for _, r := range l.Referenced {
			state := string(r.State)
			if r.Error != "" {
				state = "unreadable: " + r.Error
			}
			reason := r.Reason
			if r.Replacement != "" {
				reason += " (use " + r.Replacement + ")"
			}
			p("| %s | %s | %s | %s |\n", cell(r.Workflow), cell(state), cell(reason), cell(strings.Join(r.UsedBy, ", ")))
		}
		p("\n")
	}
	if len(l.PlansUnread) > 0 {
		p("Versions whose plan did not verify, so what they use is not counted:\n\n")
		for _, u := range l.PlansUnread {
			p("- %s:%s: %s\n", text(u.Repository), text(u.Tag), text(u.Error))
		}
		p("\n")
	}
	if len(l.Unreadable) > 0 {
		p("Versions whose state could not be computed:\n\n")
		for _, u := range l.Unreadable {
			p("- %s:%s: %s\n", text(u.Repository), text(u.Tag), text(u.Error))
		}
		p("\n")
	}

	im := r.Immutability
	p("## Immutability\n\n")
	p("- Published versions: %d\n", im.Published)
	p("- Immutability coverage: %s (%d of %d)\n", percent(im.Coverage), im.Immutable, im.Published)
	if im.ReviewToPublish != nil {
		p("- Average review submission to publication: %s (%d version(s))\n", im.ReviewToPublish, im.ReviewToPublishVersions)
	} else {
		p("- Average review submission to publication: not measurable (no version published in the period with both events)\n")
	}
	if im.Violations == nil {
		p("- Policy violations: not computed (no audit log)\n\n")
	} else {
		p("- Policy violations (denied requests) in the period: %d\n\n", *im.Violations)
		if len(im.ViolationEvents) > 0 {
			p("| Time | Actor | Repository | Operation | Tag | Rule | Message |\n|---|---|---|---|---|---|---|\n")
			for _, v := range im.ViolationEvents {
				p("| %s | %s | %s | %s | %s | %s | %s |\n", ts(v.Time), cell(v.Actor), cell(v.Repository), cell(v.Operation), cell(v.Tag), cell(v.Rule), cell(v.Message))
			}
			p("\n")
		}
	}

	if a := r.Audit; a != nil {
		p("## Audit trail\n\n")
		p("- Entries: %d (%d in the period)\n", a.Entries, a.InPeriod)
		p("- Chain verified: %s (%d break(s))\n", yesNo(a.ChainVerified), a.Breaks)
		if a.FirstBreak != "" {
			p("- First break: %s\n", text(a.FirstBreak))
		}
		p("- Complete from first to last entry: %s; last entry: seq %d, hash %s (entries cut off the end leave no break: compare with a copy kept elsewhere)\n\n", yesNo(a.Complete), a.LastSeq, a.LastHash)
	}
	if in := r.Integrity; in != nil {
		p("## Integrity\n\n")
		p("- Checks in the period: %d (%d ok, %d failed, %d could not run)\n", in.Checks, in.OK, in.Failed, in.Errors)
		p("- Check success rate: %s\n", percent(in.SuccessRate))
		p("- Results log chain verified: %s\n", yesNo(in.LogVerified))
		p("- Violations (failed checks): %d\n\n", len(in.Violations))
		if len(in.Violations) > 0 {
			p("| Time | Version | Check | Time to detect |\n|---|---|---|---|\n")
			for _, d := range in.Violations {
				ttd := "not measurable (no earlier ok check)"
				switch {
				case d.TimeToDetect != nil:
					ttd = d.TimeToDetect.String()
				case d.Repeat:
					ttd = "repeat of an earlier failure"
				}
				p("| %s | %s:%s@%s | %s | %s |\n", ts(d.Time), cell(d.Repository), cell(d.Tag), cell(d.Digest), cell(d.Rule), ttd)
			}
			p("\n")
		}
	}
	p("## Not computed\n\n")
	if len(r.NotComputed) == 0 {
		p("- nothing: every metric above was computed\n")
	}
	for _, n := range r.NotComputed {
		p("- %s: %s\n", text(n.Metric), text(n.Reason))
	}
	p("\n## Not knowable by a registry\n\n")
	for _, n := range r.NotKnowable {
		p("- %s\n", n)
	}
	return b.Flush()
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
