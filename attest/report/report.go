// Package report computes the compliance report of workflow repositories
// (docs/operations.md, "Compliance reports") from what a registry can show:
// the verified lifecycle chains of the versions, the registry's audit log and
// the integrity monitor's results log. Every figure is computed from those
// records; what they cannot tell is listed as not computed or not knowable,
// never estimated.
package report

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
)

// Options say which logs to read and which period to report on.
type Options struct {
	// AuditLog is the registry's audit log file; empty leaves the audit
	// metrics and the policy violations not computed.
	AuditLog string
	// MonitorLog is the integrity monitor's results log; empty leaves the
	// integrity metrics not computed.
	MonitorLog string
	// Since and Until bound the period (Since inclusive, Until
	// exclusive); a zero bound is open.
	Since, Until time.Time
	// Now stamps the report; nil means time.Now.
	Now func() time.Time
	// Concurrency bounds the versions listed at once (verify.VersionsOptions).
	Concurrency int
}

// Report is the compliance report.
type Report struct {
	Generated    time.Time    `json:"generated"`
	Period       Period       `json:"period"`
	Repositories []string     `json:"repositories"`
	Lifecycle    Lifecycle    `json:"lifecycle"`
	Immutability Immutability `json:"immutability"`
	Audit        *Audit       `json:"audit,omitempty"`
	Integrity    *Integrity   `json:"integrity,omitempty"`
	// NotComputed lists the metrics this report leaves out, and why.
	NotComputed []NotComputed `json:"notComputed"`
	// NotKnowable lists what a registry cannot know at all.
	NotKnowable []string `json:"notKnowable"`
}

// Period is the reported period; nil bounds are open.
type Period struct {
	Since *time.Time `json:"since,omitempty"`
	Until *time.Time `json:"until,omitempty"`
}

// NotComputed is a metric left out.
type NotComputed struct {
	Metric string `json:"metric"`
	Reason string `json:"reason"`
}

// Lifecycle are the lifecycle metrics.
type Lifecycle struct {
	// Versions counts the tagged versions listed.
	Versions int `json:"versions"`
	// States counts the versions by their current verified state.
	States map[lifecycle.State]int `json:"states"`
	// Signers are every signer of a workflow or of a counted event.
	Signers []string `json:"signers"`
	// ExceptionCount counts Exceptions.
	ExceptionCount int         `json:"exceptionCount"`
	Exceptions     []Exception `json:"exceptions"`
	// Unreadable are the versions whose state could not be computed.
	Unreadable []VersionError `json:"unreadable,omitempty"`
	// DeprecatedReferenced counts the deprecated workflow versions that
	// the plan of a published or deprecated version of the reported
	// repositories still uses (uses: dependencies, pinned by digest);
	// Referenced lists them with who uses them. A dependency whose state
	// could not be read is listed too, with its error, but not counted.
	DeprecatedReferenced int         `json:"deprecatedReferenced"`
	Referenced           []Reference `json:"referenced"`
	// PlansUnread are the published or deprecated versions whose plan did
	// not verify, so that what they use is not counted.
	PlansUnread []VersionError `json:"plansUnread,omitempty"`
}

// Reference is a deprecated (or unreadable) workflow version still used.
type Reference struct {
	// Workflow is the dependency as the plans pin it (repository@digest).
	Workflow string          `json:"workflow"`
	State    lifecycle.State `json:"state,omitempty"`
	Reason   string          `json:"reason,omitempty"`
	// Replacement is the version its deprecation names instead.
	Replacement string `json:"replacement,omitempty"`
	// UsedBy are the versions (repository:tag) whose plans use it.
	UsedBy []string `json:"usedBy"`
	Error  string   `json:"error,omitempty"`
}

// Exception is a counted emergency event (an emergency retirement) recorded
// in the period.
type Exception struct {
	Repository    string    `json:"repository"`
	Tag           string    `json:"tag"`
	Digest        string    `json:"digest"`
	Time          time.Time `json:"time"`
	Reason        string    `json:"reason"`
	Justification string    `json:"justification"`
	Impact        string    `json:"impact,omitempty"`
	Remediation   string    `json:"remediation,omitempty"`
	Signers       []string  `json:"signers"`
}

// VersionError is a version whose lifecycle could not be read.
type VersionError struct {
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Error      string `json:"error"`
}

// Immutability are the immutability metrics.
type Immutability struct {
	// Published counts the versions that reached publication (now
	// published, deprecated, retired, archived or quarantined).
	Published int `json:"published"`
	// Immutable counts those whose tag is immutable under the default
	// server rule or recorded in a verified signature; Coverage is
	// Immutable/Published (nil without published versions).
	Immutable int      `json:"immutable"`
	Coverage  *float64 `json:"coverage"`
	// ReviewToPublish is the average time from the review submission to
	// the publication event, over the ReviewToPublishVersions versions
	// published in the period whose chain has both.
	ReviewToPublish         *Duration `json:"reviewToPublish"`
	ReviewToPublishVersions int       `json:"reviewToPublishVersions"`
	// Violations counts the audit log's denied requests in the period
	// (nil without an audit log).
	Violations      *int        `json:"violations"`
	ViolationEvents []Violation `json:"violationEvents,omitempty"`
}

// Violation is one denied request.
type Violation struct {
	Time       time.Time `json:"time"`
	Actor      string    `json:"actor"`
	Repository string    `json:"repository"`
	Operation  string    `json:"operation"`
	Tag        string    `json:"tag,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	Rule       string    `json:"rule,omitempty"`
	Message    string    `json:"message,omitempty"`
}

// Audit are the audit log metrics.
type Audit struct {
	// Entries counts the log's entries; InPeriod those in the period.
	Entries  int `json:"entries"`
	InPeriod int `json:"inPeriod"`
	// ChainVerified is true when every link from the first entry to the
	// last verified; Breaks counts the broken ones.
	ChainVerified bool   `json:"chainVerified"`
	Breaks        int    `json:"breaks"`
	FirstBreak    string `json:"firstBreak,omitempty"`
	// Complete is ChainVerified: the trail is complete from its first
	// entry to its last. Entries cut off the end leave no break; compare
	// LastSeq and LastHash with a copy kept elsewhere.
	Complete bool   `json:"complete"`
	LastSeq  int64  `json:"lastSeq"`
	LastHash string `json:"lastHash"`
}

// Integrity are the integrity monitor's metrics.
type Integrity struct {
	// Checks counts the checks in the period: OK passed, Failed failed,
	// Errors could not run.
	Checks int `json:"checks"`
	OK     int `json:"ok"`
	Failed int `json:"failed"`
	Errors int `json:"errors"`
	// SuccessRate is OK/(OK+Failed); checks that could not run count in
	// neither (nil without any).
	SuccessRate *float64 `json:"successRate"`
	// LogVerified is true when the results log's chain verified.
	LogVerified bool        `json:"logVerified"`
	Violations  []Detection `json:"violations"`
	// Series is the success rate over time: the period's checks in
	// consecutive buckets of equal width (BucketWidth), from the bucket
	// of the first check to that of the last.
	BucketWidth Duration `json:"bucketWidth,omitempty"`
	Series      []Bucket `json:"series"`
}

// Bucket counts the checks from Start (inclusive) to End (exclusive).
type Bucket struct {
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	OK     int       `json:"ok"`
	Failed int       `json:"failed"`
	Errors int       `json:"errors"`
	// SuccessRate is OK/(OK+Failed), nil without either.
	SuccessRate *float64 `json:"successRate"`
}

// maxBuckets bounds Integrity.Series; widths are the bucket widths tried,
// smallest first.
const maxBuckets = 48

var widths = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 6 * time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour}

type check struct {
	t       time.Time
	outcome string
}

// series buckets checks (in time order or not) into at most maxBuckets
// buckets of the smallest width in widths that fits, or of a width
// doubled from the largest until it does.
func series(checks []check) (Duration, []Bucket) {
	if len(checks) == 0 {
		return 0, []Bucket{}
	}
	first, last := checks[0].t, checks[0].t
	for _, c := range checks {
		if c.t.Before(first) {
			first = c.t
		}
		if c.t.After(last) {
			last = c.t
		}
	}
	span := last.Sub(first)
	w := widths[len(widths)-1]
	for _, c := range widths {
		if span/c < maxBuckets {
			w = c
			break
		}
	}
	for span/w >= maxBuckets {
		w *= 2
	}
	start := first.UTC().Truncate(w)
	n := int(last.UTC().Sub(start)/w) + 1
	out := make([]Bucket, n)
	for i := range out {
		out[i].Start = start.Add(time.Duration(i) * w)
		out[i].End = out[i].Start.Add(w)
	}
	for _, c := range checks {
		b := &out[int(c.t.UTC().Sub(start)/w)]
		switch c.outcome {
		case audit.OK:
			b.OK++
		case audit.Failed:
			b.Failed++
		default:
			b.Errors++
		}
	}
	for i := range out {
		if n := out[i].OK + out[i].Failed; n > 0 {
			rate := float64(out[i].OK) / float64(n)
			out[i].SuccessRate = &rate
		}
	}
	return Duration(w), out
}

// Detection is one failed check.
type Detection struct {
	Time       time.Time `json:"time"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag,omitempty"`
	Digest     string    `json:"digest"`
	Rule       string    `json:"rule,omitempty"`
	Message    string    `json:"message,omitempty"`
	// LastOK is the last passed check of the version before the first
	// failure of this run of failures; TimeToDetect is Time minus LastOK
	// for that first failure. Both are nil when not measurable (no earlier
	// passed check) or, with Repeat, for a later failure of the same run.
	LastOK       *time.Time `json:"lastOK"`
	TimeToDetect *Duration  `json:"timeToDetect"`
	Repeat       bool       `json:"repeat,omitempty"`
}

// Duration is a time.Duration that marshals as its string form.
type Duration time.Duration

// MarshalJSON writes the duration rounded to the millisecond, as "1m2.5s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

func (d Duration) String() string { return time.Duration(d).Round(time.Millisecond).String() }

// notKnowable are the compliance facts a registry has no record of.
var notKnowable = []string{
	"GDPR erasure requests and their handling: personal data held outside the registry's records",
	"who read or ran a workflow outside the registry (copies, caches, mirrors, local files)",
	"whether a runtime actually verified a version before running it",
	"approvals, reviews or exceptions decided outside the signed lifecycle chain",
	"uses of a workflow by versions of repositories not reported, or by plans kept outside the registry",
	"audit log entries removed from its end (no break shows; compare the last sequence number and hash with a copy kept elsewhere)",
}

// Build computes the report of repos (registry/repository each) with v.
func Build(ctx context.Context, v *verify.Verifier, repos []string, opts Options) (*Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	r := &Report{
		Generated:    now().UTC(),
		Repositories: slices.Clone(repos),
		Lifecycle:    Lifecycle{States: map[lifecycle.State]int{}, Signers: []string{}, Exceptions: []Exception{}, Referenced: []Reference{}},
		NotKnowable:  slices.Clone(notKnowable),
		NotComputed:  []NotComputed{},
	}
	if !opts.Since.IsZero() {
		s := opts.Since.UTC()
		r.Period.Since = &s
	}
	if !opts.Until.IsZero() {
		u := opts.Until.UTC()
		r.Period.Until = &u
	}
	for _, s := range lifecycle.States() {
		r.Lifecycle.States[s] = 0
	}
	signers := map[string]bool{}
	rules := immutability.Default()
	var total time.Duration
	var executable []used
	for _, repo := range repos {
		list, err := v.Versions(ctx, repo, verify.VersionsOptions{Concurrency: opts.Concurrency})
		if err != nil {
			return nil, fmt.Errorf("report: list the versions of %s: %w", repo, err)
		}
		if list.Truncated {
			r.NotComputed = append(r.NotComputed, NotComputed{Metric: "versions of " + repo + " beyond the first " + fmt.Sprint(list.MaxTags), Reason: "the repository has more version tags than are read"})
		}
		for _, ver := range list.Versions {
			r.Lifecycle.Versions++
			if ver.Err != nil {
				if !ver.Failed && !aboutTheVersion(ver.Err) {
					// Not a finding about the version: the registry did not
					// answer. A report missing versions would look complete.
					return nil, fmt.Errorf("report: read %s:%s: %w (rerun when the registry answers)", repo, ver.Tag, ver.Err)
				}
				r.Lifecycle.Unreadable = append(r.Lifecycle.Unreadable, VersionError{repo, ver.Tag, ver.Error})
				continue
			}
			st := ver.Status
			if st.MovedTag(ver.Tag) {
				r.Lifecycle.Unreadable = append(r.Lifecycle.Unreadable, VersionError{repo, ver.Tag,
					"reference check failed: the tag was moved onto content signed for another version (signed tag(s) " + strings.Join(st.SignedTags, ", ") + ")"})
				continue
			}
			r.Lifecycle.States[st.State]++
			for _, s := range st.Signers {
				signers[s] = true
			}
			var review, published *time.Time
			for _, l := range st.Chain {
				for _, s := range l.Signers {
					signers[s] = true
				}
				ev := l.Event
				switch ev.State {
				// The first publication, and the last submission before it.
				case lifecycle.Review:
					if published == nil {
						t := ev.Time
						review = &t
					}
				case lifecycle.Published:
					if published == nil {
						t := ev.Time
						published = &t
					}
				}
				if ev.Emergency != nil && opts.in(ev.Time) {
					r.Lifecycle.Exceptions = append(r.Lifecycle.Exceptions, Exception{
						Repository: repo, Tag: ver.Tag, Digest: st.Digest, Time: ev.Time.UTC(), Reason: ev.Reason,
						Justification: ev.Emergency.Justification, Impact: ev.Emergency.Impact, Remediation: ev.Emergency.Remediation,
						Signers: slices.Clone(l.Signers),
					})
				}
			}
			if st.State == lifecycle.Published || st.State == lifecycle.Deprecated {
				executable = append(executable, used{repo, ver.Tag, st.Digest})
			}
			switch st.State {
			case lifecycle.Published, lifecycle.Deprecated, lifecycle.Retired, lifecycle.Archived, lifecycle.Quarantined:
				r.Immutability.Published++
				mode, _ := rules.Match(repoPath(repo), ver.Tag)
				if mode == immutability.Immutable || slices.Contains(st.SignedTags, ver.Tag) {
					r.Immutability.Immutable++
				}
			}
			if review != nil && published != nil && !published.Before(*review) && opts.in(*published) {
				total += published.Sub(*review)
				r.Immutability.ReviewToPublishVersions++
			}
		}
	}
	for s := range signers {
		r.Lifecycle.Signers = append(r.Lifecycle.Signers, s)
	}
	sort.Strings(r.Lifecycle.Signers)
	sort.SliceStable(r.Lifecycle.Exceptions, func(i, j int) bool { return r.Lifecycle.Exceptions[i].Time.Before(r.Lifecycle.Exceptions[j].Time) })
	r.Lifecycle.ExceptionCount = len(r.Lifecycle.Exceptions)
	if r.Immutability.Published > 0 {
		c := float64(r.Immutability.Immutable) / float64(r.Immutability.Published)
		r.Immutability.Coverage = &c
	}
	if n := r.Immutability.ReviewToPublishVersions; n > 0 {
		d := Duration(total / time.Duration(n))
		r.Immutability.ReviewToPublish = &d
	}
	r.Lifecycle.Referenced, r.Lifecycle.PlansUnread = references(ctx, v, executable, opts.Concurrency)
	for _, ref := range r.Lifecycle.Referenced {
		if ref.State == lifecycle.Deprecated {
			r.Lifecycle.DeprecatedReferenced++
		}
	}

	if opts.AuditLog == "" {
		r.NotComputed = append(r.NotComputed,
			NotComputed{Metric: "audit trail", Reason: "no audit log given (--audit-log)"},
			NotComputed{Metric: "immutability policy violations", Reason: "no audit log given (--audit-log)"})
	} else {
		a, viol, err := readAudit(opts.AuditLog, repos, opts)
		if err != nil {
			return nil, err
		}
		r.Audit = a
		n := len(viol)
		r.Immutability.Violations = &n
		r.Immutability.ViolationEvents = viol
	}
	if opts.MonitorLog == "" {
		r.NotComputed = append(r.NotComputed, NotComputed{Metric: "integrity", Reason: "no monitor results log given (--monitor-log)"})
	} else {
		in, err := readMonitor(opts.MonitorLog, repos, opts)
		if err != nil {
			return nil, err
		}
		r.Integrity = in
	}
	return r, nil
}

// used is a published or deprecated version, whose plan's uses count.
type used struct{ repo, tag, digest string }

// references returns the deprecated workflows (or those whose state cannot
// be read) that the plans of versions use, and the versions whose plan did
// not verify. Each plan is verified once per digest and each dependency's
// state read once, concurrency at a time.
func references(ctx context.Context, v *verify.Verifier, versions []used, concurrency int) ([]Reference, []VersionError) {
	if concurrency < 1 {
		concurrency = 8
	}
	type planOf struct {
		deps []string // workflow dependencies, pinned
		err  error
	}
	plans := map[string]*planOf{}
	var keys []string
	for _, u := range versions {
		k := u.repo + "@" + u.digest
		if plans[k] == nil {
			plans[k] = &planOf{}
			keys = append(keys, k)
		}
	}
	var g errgroup.Group
	g.SetLimit(concurrency)
	for _, k := range keys {
		p := plans[k]
		g.Go(func() error {
			wf, _, err := v.Verify(ctx, k)
			if err != nil {
				p.err = fmt.Errorf("verify its plan: %w", err)
				return nil
			}
			for _, d := range wf.Plan.Dependencies {
				if d.Kind == plan.KindWorkflow && !slices.Contains(p.deps, d.Pinned) {
					p.deps = append(p.deps, d.Pinned)
				}
			}
			return nil
		})
	}
	_ = g.Wait()
	// The state of every dependency, once each.
	states := map[string]*Reference{}
	var deps []string
	for _, k := range keys {
		for _, d := range plans[k].deps {
			if _, ok := states[d]; !ok {
				states[d] = nil
				deps = append(deps, d)
			}
		}
	}
	var mu sync.Mutex
	for _, d := range deps {
		g.Go(func() error {
			var ref *Reference
			st, err := v.Lifecycle(ctx, d)
			switch {
			case err != nil:
				ref = &Reference{Workflow: d, Error: err.Error()}
			case st.State == lifecycle.Deprecated:
				reason, replacement := st.Reason()
				ref = &Reference{Workflow: d, State: st.State, Reason: reason, Replacement: replacement}
			}
			mu.Lock()
			states[d] = ref
			mu.Unlock()
			return nil
		})
	}
	_ = g.Wait()
	var unread []VersionError
	for _, u := range versions {
		p := plans[u.repo+"@"+u.digest]
		if p.err != nil {
			unread = append(unread, VersionError{u.repo, u.tag, p.err.Error()})
			continue
		}
		for _, d := range p.deps {
			if ref := states[d]; ref != nil && !slices.Contains(ref.UsedBy, u.repo+":"+u.tag) {
				ref.UsedBy = append(ref.UsedBy, u.repo+":"+u.tag)
			}
		}
	}
	out := []Reference{}
	for _, d := range deps {
		if ref := states[d]; ref != nil && len(ref.UsedBy) > 0 {
			sort.Strings(ref.UsedBy)
			out = append(out, *ref)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workflow < out[j].Workflow })
	return out, unread
}

// repoPath is the repository's path without its registry host, as
// immutability rules name it.
func repoPath(repo string) string {
	if i := strings.IndexByte(repo, '/'); i >= 0 {
		return repo[i+1:]
	}
	return repo
}

func (o Options) in(t time.Time) bool {
	return (o.Since.IsZero() || !t.Before(o.Since)) && (o.Until.IsZero() || t.Before(o.Until))
}

// entries verifies the log at path and returns the entries that verified,
// those of kind only: an edited, inserted, reordered, over-long or
// undecodable line is a break Verify reports, and is not counted. A log
// holding entries of the other kind only is refused as the wrong log.
func entries(path, kind, flag string) (*audit.Report, []audit.Entry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("report: open the log: %w", err)
	}
	defer f.Close()
	var out []audit.Entry
	other := 0
	rep, err := audit.VerifyEach(f, func(e audit.Entry) {
		if e.Kind == kind {
			out = append(out, e)
		} else {
			other++
		}
	})
	if err != nil {
		return nil, nil, fmt.Errorf("report: verify the log %s: %w", path, err)
	}
	if len(out) == 0 && other > 0 {
		what := "the registry's audit log"
		if kind == audit.KindCheck {
			what = "the monitor's results log"
		}
		return nil, nil, fmt.Errorf("report: %s %s holds no entry of %s (%d of the other log's): %w", flag, path, what, other, errdef.ErrInvalid)
	}
	return rep, out, nil
}

// aboutTheVersion reports whether err, from reading a version's
// lifecycle, is a finding about the version rather than a registry that
// did not answer.
func aboutTheVersion(err error) bool {
	for _, e := range []error{orasdef.ErrNotFound, errdef.ErrNotWorkflow, errdef.ErrTooLarge, errdef.ErrInvalid, errdef.ErrLifecycle, errdef.ErrVerification} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// reported returns whether the log's repository (a path, without its
// registry) is one of repos (registry/repository).
func reported(repos []string, repository string) bool {
	return slices.ContainsFunc(repos, func(r string) bool { return repoPath(r) == repository })
}

// readAudit verifies the audit log and returns its figures and the denied
// requests of the period to the repositories repos (registry/repository;
// the log names repositories without their registry).
func readAudit(path string, repos []string, opts Options) (*Audit, []Violation, error) {
	rep, es, err := entries(path, audit.KindRequest, "--audit-log")
	if err != nil {
		return nil, nil, err
	}
	a := &Audit{Entries: rep.Entries, ChainVerified: rep.Broken == nil, Breaks: len(rep.Breaks) + rep.MoreBreaks, LastSeq: rep.Seq, LastHash: rep.Last}
	if rep.Broken != nil {
		a.FirstBreak = fmt.Sprintf("line %d: %s", rep.Broken.Line, rep.Broken.Reason)
	}
	a.Complete = a.ChainVerified
	viol := []Violation{}
	for _, e := range es {
		if !opts.in(e.Time) {
			continue
		}
		a.InPeriod++
		if e.Outcome == audit.Denied && reported(repos, e.Repository) {
			d := e.Digest
			if d == "" {
				d = e.Asked
			}
			viol = append(viol, Violation{Time: e.Time.UTC(), Actor: e.Actor, Repository: e.Repository, Operation: e.Operation, Tag: e.Tag, Digest: d, Rule: e.Rule, Message: e.Message})
		}
	}
	return a, viol, nil
}

// readMonitor verifies the monitor's results log and returns the figures
// of the checks of the repositories repos.
func readMonitor(path string, repos []string, opts Options) (*Integrity, error) {
	rep, es, err := entries(path, audit.KindCheck, "--monitor-log")
	if err != nil {
		return nil, err
	}
	in := &Integrity{LogVerified: rep.Broken == nil, Violations: []Detection{}}
	type state struct {
		lastOK  *time.Time
		failing bool
	}
	seen := map[string]*state{}
	var checks []check
	for _, e := range es {
		if !reported(repos, e.Repository) {
			continue
		}
		key := e.Repository + "@" + e.Digest
		s := seen[key]
		if s == nil {
			s = &state{}
			seen[key] = s
		}
		inPeriod := opts.in(e.Time)
		if inPeriod {
			in.Checks++
			checks = append(checks, check{e.Time, e.Outcome})
		}
		switch e.Outcome {
		case audit.OK:
			t := e.Time.UTC()
			s.lastOK, s.failing = &t, false
			if inPeriod {
				in.OK++
			}
		case audit.Failed:
			if inPeriod {
				in.Failed++
				d := Detection{Time: e.Time.UTC(), Repository: e.Repository, Tag: e.Tag, Digest: e.Digest, Rule: e.Rule, Message: e.Message, Repeat: s.failing}
				if !s.failing && s.lastOK != nil {
					ok := *s.lastOK
					ttd := Duration(e.Time.Sub(ok))
					d.LastOK, d.TimeToDetect = &ok, &ttd
				}
				in.Violations = append(in.Violations, d)
			}
			s.failing = true
		default:
			if inPeriod {
				in.Errors++
			}
		}
	}
	if n := in.OK + in.Failed; n > 0 {
		rate := float64(in.OK) / float64(n)
		in.SuccessRate = &rate
	}
	in.BucketWidth, in.Series = series(checks)
	return in, nil
}
