// Package monitor re-verifies published workflow versions on a schedule,
// through the full verifier (package attest/verify: digests, signatures,
// attestations, SBOM, recompilation, the lifecycle chain and, with the
// verifier's StateStore, rollback), and reports what no longer verifies.
//
// A pass lists the version tags of each repository, picks a random sample
// of them (or all), and verifies each with bounded concurrency, every
// check starting after a random delay of at most Options.Jitter so that a
// fleet of monitors does not hit a registry at once. Every check's result
// is appended to a results log (package policy/audit, entries of kind
// check: the audit log's hash chain, verified by ociwf audit verify); a
// failure is logged as one structured ERROR line, handed to the alerters
// (a webhook in Alertmanager's format is one, see Webhook) and, with a
// Quarantiner, recorded as a signed quarantine lifecycle event that makes
// runtimes refuse the version until it is released.
package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/lifecycle"
)

// Outcomes of a check, as the results log writes them.
const (
	// OK: every check of the verifier passed.
	OK = audit.OK
	// Failed: a check failed; Result.Check names it.
	Failed = audit.Failed
	// Error: the version could not be checked (an unreachable registry,
	// a tag deleted meanwhile): neither passed nor failed.
	Error = audit.Error
)

// Operation is the results log's operation of a check.
const Operation = "verify"

// Result is one check of one version.
type Result struct {
	Time       time.Time `json:"time"`
	Repository string    `json:"repository"`
	Tag        string    `json:"tag,omitempty"`
	Digest     string    `json:"digest,omitempty"`
	// Outcome is OK, Failed or Error.
	Outcome string `json:"outcome"`
	// Check is the verifier's check that failed (verify.CheckBlobs, ...).
	Check string `json:"check,omitempty"`
	// Reason says what failed or why the version could not be checked;
	// for a version refused only for its lifecycle state (retired,
	// archived, a draft), whose content checks passed, it says which.
	Reason string `json:"reason,omitempty"`
	// State is the version's lifecycle state, when the lifecycle check
	// got that far.
	State    lifecycle.State `json:"state,omitempty"`
	Duration time.Duration   `json:"durationNanos"`
	// Quarantined is true when a quarantine event was recorded for the
	// failure; QuarantineError says why recording one failed.
	Quarantined     bool   `json:"quarantined,omitempty"`
	QuarantineError string `json:"quarantineError,omitempty"`
}

// Version names the version checked: repository@digest, or
// repository:tag when the tag did not resolve.
func (r Result) Version() string {
	switch {
	case r.Digest != "":
		return r.Repository + "@" + r.Digest
	case r.Tag != "":
		return r.Repository + ":" + r.Tag
	}
	return r.Repository
}

// Alerter is told of every failed check.
type Alerter interface {
	Alert(ctx context.Context, r Result) error
}

// Quarantiner records that a version failed (see govern's Quarantine).
type Quarantiner interface {
	// Quarantine records a quarantine of ref (repository@digest) with
	// reason.
	Quarantine(ctx context.Context, ref, reason string) error
}

// Options tune a Monitor.
type Options struct {
	// Sample is how many versions of each repository a pass checks,
	// picked at random; 0 checks all.
	Sample int
	// Concurrency bounds the versions checked at once; 0 means 4.
	Concurrency int
	// Jitter is the longest random delay before each check; 0 means
	// none.
	Jitter time.Duration
	// MaxTags bounds the version tags listed per repository; 0 means
	// verify.DefaultMaxVersions.
	MaxTags int
	// Results, if set, receives one entry per check.
	Results *audit.Log
	// Actor is the results log's actor; "" means "ociwf monitor".
	Actor string
	// Alerters are told of each failure.
	Alerters []Alerter
	// Quarantine, if set, records a quarantine for each failure (not for
	// a version that could not be checked).
	Quarantine Quarantiner
	// Metrics, if set, is updated by every check and pass.
	Metrics *Metrics
	// Progress, if set, is called after each check of a pass (recorded,
	// alerted and quarantined) with the number of checks done, the
	// pass's total and the result. Calls are serialised, in the order the
	// checks finish (done counts from 1 to total in every pass).
	Progress func(done, total int, r Result)
	// Logger receives the failure alerts (one ERROR line each) and
	// progress at debug; nil discards them.
	Logger *slog.Logger
	// Rand picks the samples and delays; nil uses math/rand/v2's
	// default source.
	Rand *rand.Rand
}

// Target is a repository to monitor and the verifier for it (a policy
// built for one repository, as trust.KeyPolicy is, verifies only that
// one).
type Target struct {
	// Repository is registry/repository.
	Repository string
	Verifier   *verify.Verifier
	// Quarantine, if set, records this repository's quarantines instead
	// of Options.Quarantine.
	Quarantine Quarantiner
}

// Monitor checks versions of a set of repositories.
type Monitor struct {
	targets []Target
	opts    Options
	log     *slog.Logger
	rmu     sync.Mutex
}

// New returns a Monitor of repositories verifying through v. Give v a
// StateStore that outlives the Monitor (a lifecycle.FileStore) so
// rollbacks are noticed across runs.
func New(v *verify.Verifier, repos []string, opts Options) (*Monitor, error) {
	targets := make([]Target, len(repos))
	for i, r := range repos {
		targets[i] = Target{Repository: r, Verifier: v}
	}
	return NewTargets(targets, opts)
}

// NewTargets returns a Monitor of targets, each with its own verifier.
func NewTargets(targets []Target, opts Options) (*Monitor, error) {
	if len(targets) == 0 {
		return nil, fmt.Errorf("monitor: no repositories to monitor: %w", errdef.ErrInvalid)
	}
	for _, t := range targets {
		if t.Verifier == nil || t.Repository == "" {
			return nil, fmt.Errorf("monitor: a target without a repository or verifier: %w", errdef.ErrInvalid)
		}
	}
	if opts.Sample < 0 || opts.Concurrency < 0 || opts.Jitter < 0 {
		return nil, fmt.Errorf("monitor: sample, concurrency and jitter must not be negative: %w", errdef.ErrInvalid)
	}
	if opts.Concurrency == 0 {
		opts.Concurrency = 4
	}
	if opts.Actor == "" {
		opts.Actor = "ociwf monitor"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ts := make([]Target, len(targets))
	for i, t := range targets {
		if t.Quarantine == nil {
			t.Quarantine = opts.Quarantine
		}
		ts[i] = t
	}
	return &Monitor{targets: ts, opts: opts, log: log}, nil
}

// Summary is the outcome of one pass.
type Summary struct {
	Started  time.Time     `json:"started"`
	Duration time.Duration `json:"durationNanos"`
	// Versions counts the version tags listed; Checked those checked.
	Versions int `json:"versions"`
	Checked  int `json:"checked"`
	Passed   int `json:"passed"`
	Failed   int `json:"failed"`
	// Errors counts versions that could not be checked and
	// repositories that could not be listed.
	Errors  int      `json:"errors"`
	Results []Result `json:"results"`
}

// Failures returns the failed checks.
func (s *Summary) Failures() []Result {
	var out []Result
	for _, r := range s.Results {
		if r.Outcome == Failed {
			out = append(out, r)
		}
	}
	return out
}

// Pass checks each repository once. Failures are in the summary, not the
// error; the error is a cancelled context, or results that could not be
// written to the results log (the pass still completes).
func (m *Monitor) Pass(ctx context.Context) (*Summary, error) {
	sum := &Summary{Started: time.Now().UTC(), Results: []Result{}}
	type job struct {
		t   *Target
		tag string
	}
	var jobs []job
	for i := range m.targets {
		tg := &m.targets[i]
		repo := tg.Repository
		list, err := tg.Verifier.Tags(ctx, repo, m.opts.MaxTags)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			r := Result{Time: time.Now().UTC(), Repository: repo, Outcome: Error, Reason: err.Error()}
			sum.Results = append(sum.Results, r)
			m.log.ErrorContext(ctx, "monitor: cannot list versions", "repository", repo, "reason", r.Reason)
			continue
		}
		sum.Versions += len(list.Tags)
		for _, t := range m.sample(list.Tags) {
			jobs = append(jobs, job{tg, t})
		}
	}
	results := make([]Result, len(jobs))
	var logMu sync.Mutex // guards logErrs and done, serialises Progress
	var logErrs []error
	done := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(m.opts.Concurrency)
	for i, j := range jobs {
		g.Go(func() error {
			if err := m.wait(gctx); err != nil {
				return err
			}
			r := m.check(gctx, j.t.Verifier, j.t.Repository, j.tag)
			if gctx.Err() != nil {
				return gctx.Err()
			}
			results[i] = r
			err := m.record(gctx, j.t.Quarantine, &results[i])
			logMu.Lock()
			defer logMu.Unlock()
			if err != nil {
				logErrs = append(logErrs, err)
			}
			if m.opts.Progress != nil {
				done++
				m.opts.Progress(done, len(jobs), results[i])
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	sum.Results = append(sum.Results, results...)
	states := map[lifecycle.State]int{}
	for _, r := range sum.Results {
		switch r.Outcome {
		case OK:
			sum.Passed++
		case Failed:
			sum.Failed++
		default:
			sum.Errors++
		}
		if r.Tag != "" {
			sum.Checked++
		}
		if r.State != "" {
			states[r.State]++
		}
	}
	sum.Duration = time.Since(sum.Started)
	if m.opts.Metrics != nil {
		m.opts.Metrics.pass(sum, states, m.opts.Sample == 0)
	}
	return sum, errors.Join(logErrs...)
}

// sample picks opts.Sample of tags at random, or returns all.
func (m *Monitor) sample(tags []string) []string {
	n := m.opts.Sample
	if n == 0 || n >= len(tags) {
		return tags
	}
	out := make([]string, len(tags))
	copy(out, tags)
	m.rmu.Lock()
	defer m.rmu.Unlock()
	for i := 0; i < n; i++ {
		j := i + m.intN(len(out)-i)
		out[i], out[j] = out[j], out[i]
	}
	return out[:n]
}

// intN draws from opts.Rand or the default source; callers of a shared
// opts.Rand hold rmu.
func (m *Monitor) intN(n int) int {
	if m.opts.Rand != nil {
		return m.opts.Rand.IntN(n)
	}
	return rand.IntN(n)
}

// wait sleeps a random delay of at most opts.Jitter.
func (m *Monitor) wait(ctx context.Context) error {
	if m.opts.Jitter <= 0 {
		return ctx.Err()
	}
	m.rmu.Lock()
	d := time.Duration(m.intN(int(m.opts.Jitter)))
	m.rmu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// check verifies repo:tag once.
func (m *Monitor) check(ctx context.Context, v *verify.Verifier, repo, tag string) Result {
	start := time.Now()
	r := Result{Time: start.UTC(), Repository: repo, Tag: tag, Outcome: OK}
	_, rep, err := v.Verify(ctx, repo+":"+tag)
	r.Duration = time.Since(start)
	if rep != nil {
		if rep.Repository != "" {
			r.Repository = rep.Repository
		}
		r.Digest = rep.Digest.String()
		if rep.Lifecycle != nil {
			r.State = rep.Lifecycle.State
		}
	}
	var f *verify.Failure
	var skipped *verify.SkippedScope
	switch {
	case err == nil:
	case errors.As(err, &f):
		r.Outcome, r.Check, r.Reason = Failed, f.Check, f.Error()
		var se *lifecycle.StateError
		if errors.As(err, &se) {
			r.State = se.State
			if se.State != lifecycle.Quarantined {
				// The lifecycle check comes last: every integrity check
				// passed, and the version is refused only for the state a
				// signer gave it (retired, archived, a draft). That is the
				// policy working, not an integrity failure; a quarantine
				// stays a failure until it is released.
				r.Outcome, r.Check, r.Reason = OK, "", "content intact; "+se.Error()
			}
		}
	case errors.As(err, &skipped):
		r.Outcome, r.Check, r.Reason = Failed, "scope", err.Error()
	default:
		r.Outcome, r.Reason = Error, err.Error()
	}
	return r
}

// record writes r to the results log, alerts on a failure and
// quarantines the version; the error is the results log's.
func (m *Monitor) record(ctx context.Context, q Quarantiner, r *Result) error {
	if m.opts.Metrics != nil {
		m.opts.Metrics.check(*r)
	}
	if r.Outcome == Failed {
		if q != nil && r.Digest != "" && !quarantined(r) {
			if err := q.Quarantine(ctx, r.Repository+"@"+r.Digest, "integrity monitor: "+r.Check+" check failed: "+r.Reason); err != nil {
				r.QuarantineError = err.Error()
				m.log.ErrorContext(ctx, "monitor: quarantine not recorded", "version", r.Version(), "reason", r.QuarantineError)
			} else {
				r.Quarantined = true
			}
		}
		// One line whose time is the check's.
		if h := m.log.Handler(); h.Enabled(ctx, slog.LevelError) {
			rec := slog.NewRecord(r.Time, slog.LevelError, "integrity check failed", 0)
			rec.AddAttrs(slog.String("version", r.Version()), slog.String("tag", r.Tag), slog.String("check", r.Check),
				slog.String("reason", r.Reason), slog.Bool("quarantined", r.Quarantined))
			_ = h.Handle(ctx, rec)
		}
		for _, a := range m.opts.Alerters {
			if err := a.Alert(ctx, *r); err != nil {
				m.log.ErrorContext(ctx, "monitor: alert not delivered", "version", r.Version(), "reason", err.Error())
			}
		}
	} else {
		m.log.DebugContext(ctx, "integrity check", "version", r.Version(), "tag", r.Tag, "outcome", r.Outcome, "reason", r.Reason)
	}
	if m.opts.Results == nil {
		return nil
	}
	e := audit.Entry{Kind: audit.KindCheck, Time: r.Time, Actor: m.opts.Actor, Repository: r.Repository, Operation: Operation,
		Digest: r.Digest, Tag: r.Tag, Outcome: r.Outcome, Rule: r.Check, Message: r.Reason}
	if err := m.opts.Results.Append(e); err != nil {
		return fmt.Errorf("monitor: results log: %w", err)
	}
	return nil
}

// quarantined reports a failure that is the quarantine itself: a version
// already quarantined needs no second event.
func quarantined(r *Result) bool {
	return r.Check == verify.CheckLifecycle && r.State == lifecycle.Quarantined
}

// Run runs passes until ctx is done: one at once, then one every
// interval, each start moved by a random amount of at most a tenth of
// interval. A pass's error other than cancellation is logged, not
// returned; onPass, if set, receives each summary. It returns nil when
// ctx is done.
func (m *Monitor) Run(ctx context.Context, interval time.Duration, onPass func(*Summary)) error {
	if interval <= 0 {
		return fmt.Errorf("monitor: interval %s must be positive: %w", interval, errdef.ErrInvalid)
	}
	for {
		sum, err := m.Pass(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			m.log.ErrorContext(ctx, "monitor: pass", "reason", err.Error())
		}
		if sum != nil {
			m.log.InfoContext(ctx, "monitor: pass done", "checked", sum.Checked, "passed", sum.Passed, "failed", sum.Failed, "errors", sum.Errors, "duration", sum.Duration)
			if onPass != nil {
				onPass(sum)
			}
		}
		d := interval
		if j := int64(interval / 10); j > 0 {
			m.rmu.Lock()
			d += time.Duration(int64(m.intN(int(2*j))) - j)
			m.rmu.Unlock()
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// Recorder quarantines through a govern.Recorder, signing with Signer.
type Recorder struct {
	Recorder *govern.Recorder
	Signer   *accessory.Signer
	// Actor is the events' actor, as the monitor names itself.
	Actor string
}

// MaxReasonBytes bounds the reason a quarantine event records.
const MaxReasonBytes = 1024

// Quarantine implements Quarantiner.
func (q Recorder) Quarantine(ctx context.Context, ref, reason string) error {
	if len(reason) > MaxReasonBytes {
		reason = strings.ToValidUTF8(reason[:MaxReasonBytes], "") + "…"
	}
	_, err := q.Recorder.Quarantine(ctx, ref, q.Signer, reason, govern.EventOptions{Actor: q.Actor})
	return err
}
