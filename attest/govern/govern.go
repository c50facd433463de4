// Package govern records a workflow version's lifecycle facts in the
// registry, beside the version: review submissions, approvals and
// rejections, publications, deprecations, retirements (emergency ones
// too) and archivals, each a signed in-toto statement of package
// policy/lifecycle's predicate types, stored as the Registry stores every
// attestation (cosign's tag scheme, OCI 1.1 referrers, sigstore bundles).
//
// A Recorder reads the version's verified chain first (through a
// verify.Verifier, with its rollback state store), refuses what the state
// machine or the trust policy would not count — before signing anything —
// links the new event to the newest counted one, and reads the chain back
// to confirm the event counts. Every call is idempotent: a fact already
// recorded is reported as existing and not written twice.
package govern

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// Options tune a Recorder.
type Options struct {
	// Now is the clock events and approvals are dated by; nil means
	// time.Now.
	Now func() time.Time
	// Logger receives progress; nil discards it.
	Logger *slog.Logger
}

// Recorder records lifecycle facts.
type Recorder struct {
	v   *verify.Verifier
	reg *accessory.Registry
	now func() time.Time
	log *slog.Logger
}

// New returns a Recorder that reads chains through v (whose trust policy
// says who may do what) and writes through reg (whose format and storage
// scheme are used).
func New(v *verify.Verifier, reg *accessory.Registry, opts Options) (*Recorder, error) {
	if v == nil || reg == nil {
		return nil, fmt.Errorf("govern: a verifier and a registry are required: %w", errdef.ErrInvalid)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Recorder{v: v, reg: reg, now: now, log: log}, nil
}

// EventOptions describe an event.
type EventOptions struct {
	// Actor is who records it, as they name themselves.
	Actor string
	// Reason is required for deprecation, retirement and archival.
	Reason string
	// Replacement is the version to use instead, pinned by digest
	// (registry/repository@sha256:...).
	Replacement string
	// Emergency makes a retirement an emergency one: it counts once the
	// policy's emergency approver set approved it.
	Emergency *lifecycle.Emergency
}

// ApprovalOptions describe an approval or rejection.
type ApprovalOptions struct {
	Actor     string
	Comment   string
	Checklist []lifecycle.ChecklistItem
	Risk      *lifecycle.Risk
	// Emergency decides the pending emergency retirement instead of the
	// open review.
	Emergency bool
	// Request, if set, is the ID of the submission or emergency event
	// decided; it must be the open one.
	Request string
}

// Result is what a call recorded.
type Result struct {
	// Reference is the version, pinned: repository@sha256:....
	Reference string `json:"reference"`
	// ID is the event's or approval's ID.
	ID string `json:"id"`
	// Existing is true when the fact was already recorded, so nothing
	// was written.
	Existing bool `json:"existing,omitempty"`
	// From and State are the version's state before and after.
	From  lifecycle.State `json:"from"`
	State lifecycle.State `json:"state"`
	// Pending is set when an emergency retirement still needs approvals.
	Pending *lifecycle.Pending `json:"pending,omitempty"`
	// Note says how an existing fact differs from what the call asked
	// for (another reason, say): the recorded one stands.
	Note string `json:"note,omitempty"`
	// Status is the verified lifecycle after the call.
	Status *verify.LifecycleStatus `json:"status"`
}

// Transition records the version at ref entering state to, signed by s.
// It refuses (with a *lifecycle.TransitionError, matching
// errdef.ErrLifecycle) a transition the state machine does not allow from
// the verified state, a publication without the approvals the policy
// requires, and a signer the policy does not allow that transition.
func (r *Recorder) Transition(ctx context.Context, ref string, s *accessory.Signer, to lifecycle.State, opts EventOptions) (*Result, error) {
	res, ev, err := r.prepare(ctx, ref, s, to, opts)
	if err != nil || ev == nil {
		return res, err
	}
	raw, id, err := ev.Encode()
	if err != nil {
		return nil, err
	}
	raced, err := r.write(ctx, s, res.Status, lifecycle.EventPredicateType, raw, SameTransition(ev))
	if err != nil {
		return nil, err
	}
	if raced {
		// A racing writer with this key (a CI job run twice at once,
		// say) recorded this transition from the same predecessor first;
		// writing this event as well would fork the chain.
		r.log.InfoContext(ctx, "lifecycle event recorded by a concurrent writer", "reference", res.Reference, "state", to)
		res.Existing = true
		res.Note = "a concurrent call recorded this transition first; its event stands"
		return r.confirm(ctx, res, ref, "", func(after *verify.LifecycleStatus) bool {
			l := after.Last()
			if l != nil && l.Event.State == to && l.Event.Previous == ev.Previous {
				res.ID = l.ID
				return true
			}
			return false
		})
	}
	r.log.InfoContext(ctx, "lifecycle event recorded", "reference", res.Reference, "state", to, "id", id, "emergency", opts.Emergency != nil)
	return r.confirm(ctx, res, ref, id, func(after *verify.LifecycleStatus) bool {
		if l := after.Last(); l != nil && l.ID == id {
			return true
		}
		return pendingOf(after, id) != nil
	})
}

// Quarantine records the version at ref quarantined, signed by s, with
// reason: verify, pull and runtimes (verify.Fetch) refuse it until a
// signer the policy allows to release it records a Release. Only a
// published or deprecated version can be quarantined; one quarantined
// already is left as it is (the Result says Existing).
func (r *Recorder) Quarantine(ctx context.Context, ref string, s *accessory.Signer, reason string, opts EventOptions) (*Result, error) {
	opts.Reason = reason
	return r.Transition(ctx, ref, s, lifecycle.Quarantined, opts)
}

// Release records the quarantined version at ref back in the state it
// was in before its quarantine, signed by s, who must hold the policy's
// release role. A version that is not quarantined is refused with a
// *lifecycle.TransitionError.
func (r *Recorder) Release(ctx context.Context, ref string, s *accessory.Signer, opts EventOptions) (*Result, error) {
	st, err := r.v.Lifecycle(ctx, ref)
	if err != nil {
		return nil, err
	}
	if st.State != lifecycle.Quarantined {
		ref := st.Repository + "@" + st.Digest
		return nil, &lifecycle.TransitionError{Workflow: ref, From: st.State, To: lifecycle.Published, Allowed: lifecycle.Next(st.State),
			Rule: "only a quarantined version can be released"}
	}
	return r.Transition(ctx, ref, s, BeforeQuarantine(st.Status), opts)
}

// BeforeQuarantine returns the state a quarantined version was in before
// its newest quarantine event (published, for a version published by its
// signature alone); "" when st is not quarantined.
func BeforeQuarantine(st *lifecycle.Status) lifecycle.State {
	if st == nil || st.State != lifecycle.Quarantined {
		return ""
	}
	for i := len(st.Chain) - 1; i > 0; i-- {
		if st.Chain[i].Event.State == lifecycle.Quarantined {
			return st.Chain[i-1].Event.State
		}
	}
	return lifecycle.Published
}

// PublicationEvent refuses a publication of ref, signed by s, that its
// lifecycle would not count — a transition the state machine does not
// allow from its verified state, missing approvals, a signer the policy
// does not allow to publish — and returns the event the publication must
// record, for the publish ceremony to sign and store with its
// attestations. It returns nil when the chain records the publication
// already.
func (r *Recorder) PublicationEvent(ctx context.Context, ref string, s *accessory.Signer, opts EventOptions) (*lifecycle.Event, error) {
	_, ev, err := r.prepare(ctx, ref, s, lifecycle.Published, opts)
	return ev, err
}

// prepare reads ref's verified chain and returns the event that moves it
// to state to, or nil when the chain records it already (the Result then
// says Existing); it refuses what would not count.
func (r *Recorder) prepare(ctx context.Context, ref string, s *accessory.Signer, to lifecycle.State, opts EventOptions) (*Result, *lifecycle.Event, error) {
	if s == nil {
		return nil, nil, fmt.Errorf("govern: no signer: %w", errdef.ErrInvalid)
	}
	if lifecycle.RoleFor(to) == "" {
		return nil, nil, fmt.Errorf("%s is not a state an event enters (review, published, deprecated, retired, archived, quarantined): %w", to, errdef.ErrInvalid)
	}
	if opts.Emergency != nil && to != lifecycle.Retired {
		return nil, nil, fmt.Errorf("only a retirement can be an emergency: %w", errdef.ErrInvalid)
	}
	if (to == lifecycle.Deprecated || to == lifecycle.Retired || to == lifecycle.Archived || to == lifecycle.Quarantined) && strings.TrimSpace(opts.Reason) == "" {
		return nil, nil, fmt.Errorf("a %s event needs a reason (--reason): %w", to, errdef.ErrInvalid)
	}
	if opts.Replacement != "" {
		if i := strings.LastIndex(opts.Replacement, "@"); i < 0 || digest.Digest(opts.Replacement[i+1:]).Validate() != nil {
			return nil, nil, fmt.Errorf("replacement %q: want registry/repository@sha256:<hex>, pinned by digest: %w", opts.Replacement, errdef.ErrInvalidReference)
		}
	}
	st, err := r.v.Lifecycle(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	res := &Result{Reference: st.Repository + "@" + st.Digest, From: st.State, State: st.State, Status: st}
	if id, ok := recorded(st, to, opts); ok {
		res.ID, res.Existing = id, true
		res.Pending = pendingOf(st, id)
		if l := st.Last(); l != nil && l.ID == id && (opts.Reason != l.Event.Reason || opts.Replacement != l.Event.Replacement) {
			res.Note = fmt.Sprintf("the version is %s already, recorded with reason %q and replacement %q; the reason and replacement given now are not recorded (events are never rewritten)", to, l.Event.Reason, l.Event.Replacement)
		}
		return res, nil, nil
	}
	from := st.State
	if st.Implicit && to == lifecycle.Published {
		// Published by its signature alone: the publication event
		// records what the signature did, as the first link. Any other
		// event follows from published (a submission would take a
		// published version out of use).
		from = lifecycle.Draft
	}
	refuse := func(rule string) error {
		return &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(from), Rule: rule}
	}
	scope, names, err := r.signerNames(ctx, ref, s)
	if err != nil {
		return nil, nil, err
	}
	roles := scope.Lifecycle.Roles
	if !lifecycle.CanTransition(from, to) {
		return nil, nil, refuse("the lifecycle state machine does not allow it")
	}
	if to == lifecycle.Published && from != lifecycle.Quarantined && roles.Approve.Threshold > 0 {
		got := 0
		if st.Round != nil {
			got = len(st.Round.Approvers())
		}
		if from != lifecycle.Approved {
			return nil, nil, refuse(fmt.Sprintf("trust policy %q: publication needs %d approvals from %s, the version has %d",
				scope.Name, roles.Approve.Threshold, strings.Join(roles.Approve.Signers, ", "), got))
		}
	}
	role, allowed := lifecycle.RoleFor(to), roles.Allowed(lifecycle.RoleFor(to), scope.SignerNames())
	if from == lifecycle.Quarantined {
		if before := BeforeQuarantine(st.Status); to != before {
			return nil, nil, refuse(fmt.Sprintf("a quarantined version is released to the state it was in before the quarantine, %s (ociwf lifecycle release)", before))
		}
		role, allowed = lifecycle.RoleRelease, roles.Allowed(lifecycle.RoleRelease, scope.SignerNames())
	}
	if opts.Emergency != nil {
		role, allowed = lifecycle.RoleEmergency, roles.Emergency.Signers
		if roles.Emergency.Threshold == 0 {
			return nil, nil, refuse(fmt.Sprintf("trust policy %q: it names no emergency approvers (lifecycle.emergency)", scope.Name))
		}
	}
	if err := allowedSigner(res.Reference, st.State, to, scope, role, allowed, names, s); err != nil {
		return nil, nil, err
	}
	// The publisher's own approvals do not count for their publication
	// (lifecycle.Evaluate would fail the chain).
	if to == lifecycle.Published && roles.Approve.Threshold > 0 && st.Round != nil {
		got := st.Round.Approvers()
		if own := intersect(got, names); len(own) > 0 && len(got)-len(own) < roles.Approve.Threshold {
			return nil, nil, refuse(fmt.Sprintf("trust policy %q: publication needs %d approvals from approvers other than the publisher; %s approved it, so it has %d (another publisher may publish it)",
				scope.Name, roles.Approve.Threshold, strings.Join(own, ", "), len(got)-len(own)))
		}
	}
	ev := &lifecycle.Event{Workflow: st.Digest, State: to, Sequence: 1, Time: r.now().UTC().Truncate(time.Second),
		Actor: opts.Actor, Reason: opts.Reason, Replacement: opts.Replacement, Emergency: opts.Emergency}
	if last := st.Last(); last != nil {
		ev.Previous, ev.Sequence = last.ID, last.Event.Sequence+1
		if ev.Time.Before(last.Event.Time) {
			ev.Time = last.Event.Time // a clock behind the previous signer's
		}
	}
	return res, ev, nil
}

// Decide records an approval or a rejection of the open review (or, with
// opts.Emergency, of the pending emergency retirement), signed by s.
func (r *Recorder) Decide(ctx context.Context, ref string, s *accessory.Signer, d lifecycle.Decision, opts ApprovalOptions) (*Result, error) {
	if s == nil {
		return nil, fmt.Errorf("govern: no signer: %w", errdef.ErrInvalid)
	}
	if d != lifecycle.Approve && d != lifecycle.Reject {
		return nil, fmt.Errorf("decision %q: want approve or reject: %w", d, errdef.ErrInvalid)
	}
	st, err := r.v.Lifecycle(ctx, ref)
	if err != nil {
		return nil, err
	}
	res := &Result{Reference: st.Repository + "@" + st.Digest, From: st.State, State: st.State, Status: st}
	scope, names, err := r.signerNames(ctx, ref, s)
	if err != nil {
		return nil, err
	}
	roles := scope.Lifecycle.Roles
	var request string
	var votes []lifecycle.Vote
	var excluded []string
	role, allowed := lifecycle.RoleApprove, roles.Approve.Signers
	to := lifecycle.Approved
	if opts.Emergency {
		role, allowed, to = lifecycle.RoleEmergency, roles.Emergency.Signers, lifecycle.Retired
		pending := openPending(st)
		switch len(pending) {
		case 0:
			// Deciding again once the retirement counted: the decision is
			// recorded with the counted emergency event.
			for i := len(st.Chain) - 1; i >= 0; i-- {
				l := st.Chain[i]
				if l.Event.Emergency == nil || (opts.Request != "" && opts.Request != l.ID) {
					continue
				}
				for _, v := range l.Approvals {
					if v.Approval.Decision == d && len(intersect(v.Signers, names)) > 0 {
						res.ID, res.Existing = v.ID, true
						return res, nil
					}
				}
			}
			rule := "no emergency retirement is pending (record one with lifecycle retire --emergency)"
			if len(st.Pending) > 0 {
				// Counted now, it would fork the chain at the event it
				// follows.
				var ids []string
				for _, p := range st.Pending {
					ids = append(ids, p.ID)
				}
				rule = fmt.Sprintf("the pending emergency retirement %s was recorded before the newest event, so approving it would fork the chain; record a new one with lifecycle retire --emergency", strings.Join(ids, ", "))
			}
			return nil, &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(st.State), Rule: rule}
		case 1:
			request, votes, excluded = pending[0].ID, pending[0].Approvals, pending[0].Signers
		default:
			if opts.Request == "" {
				return nil, fmt.Errorf("%d emergency retirements are pending: name one by its ID: %w", len(pending), errdef.ErrInvalid)
			}
			for _, p := range pending {
				if p.ID == opts.Request {
					request, votes, excluded = p.ID, p.Approvals, p.Signers
				}
			}
		}
		if own := intersect(names, excluded); d == lifecycle.Approve && len(own) > 0 {
			// The retirement's signature is its signer's approval: another
			// one would be written and change nothing.
			var p *lifecycle.Pending
			for i := range st.Pending {
				if st.Pending[i].ID == request {
					p = &st.Pending[i]
				}
			}
			more := ""
			if p != nil {
				more = fmt.Sprintf(" (%d of %d so far); another of %s must approve it", len(p.Agree), p.Needed, strings.Join(without(allowed, p.Agree), ", "))
			}
			return nil, &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(st.State),
				Rule: fmt.Sprintf("trust policy %q: %s recorded the emergency retirement %s, which counts as their approval already%s", scope.Name, strings.Join(own, ", "), request, more)}
		}
		excluded = nil
	} else {
		if st.Round == nil || st.State == lifecycle.Draft {
			if st.Round != nil && d == lifecycle.Reject && (opts.Request == "" || opts.Request == st.Round.Request) {
				// Rejecting again: the round's rejection by this key is recorded.
				for _, v := range st.Round.Rejections {
					if len(intersect(v.Signers, names)) > 0 {
						res.ID, res.Existing = v.ID, true
						return res, nil
					}
				}
			}
			rule := "no review is open (submit the version with review submit)"
			if st.Rejected {
				rule = "the review was rejected (submit the version again to open a new one)"
			}
			return nil, &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(st.State), Rule: rule}
		}
		request = st.Round.Request
		votes = append(slices.Clone(st.Round.Approvals), st.Round.Rejections...)
		excluded = st.Round.Author
	}
	if opts.Request != "" && opts.Request != request {
		return nil, &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(st.State),
			Rule: fmt.Sprintf("request %s is not the open one (%s)", opts.Request, request)}
	}
	if err := allowedSigner(res.Reference, st.State, to, scope, role, allowed, names, s); err != nil {
		return nil, err
	}
	if own := intersect(names, excluded); len(own) > 0 && len(without(intersect(names, allowed), excluded)) == 0 {
		return nil, &lifecycle.TransitionError{Workflow: res.Reference, From: st.State, To: to, Allowed: lifecycle.Next(st.State),
			Rule: fmt.Sprintf("trust policy %q: %s submitted the version and may not approve it", scope.Name, strings.Join(own, ", "))}
	}
	for _, v := range votes {
		if v.Approval.Decision == d && len(intersect(v.Signers, names)) > 0 {
			res.ID, res.Existing = v.ID, true
			res.Pending = pendingOf(st, request)
			return res, nil
		}
	}
	a := lifecycle.Approval{Workflow: st.Digest, Request: request, Decision: d, Time: r.now().UTC().Truncate(time.Second),
		Actor: opts.Actor, Comment: opts.Comment, Checklist: opts.Checklist, Risk: opts.Risk}
	raw, id, err := a.Encode()
	if err != nil {
		return nil, err
	}
	if _, err := r.write(ctx, s, st, lifecycle.ApprovalPredicateType, raw, nil); err != nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "decision recorded", "reference", res.Reference, "decision", d, "request", request, "id", id)
	return r.confirm(ctx, res, ref, id, func(after *verify.LifecycleStatus) bool {
		for _, ig := range after.Ignored {
			if ig.ID == id {
				return false
			}
		}
		return true
	})
}

// write stores one lifecycle statement about the version st describes.
func (r *Recorder) write(ctx context.Context, s *accessory.Signer, st *verify.LifecycleStatus, predicateType string, raw []byte, recorded func(string, []byte) bool) (existing bool, err error) {
	subj := accessory.NewSubject(target.Ref{Name: st.Repository, Reference: st.Digest}, digest.Digest(st.Digest))
	res, err := r.reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: predicateType, Predicate: raw, Duplicates: accessory.Append, Now: r.now, Recorded: recorded})
	if err != nil {
		return false, fmt.Errorf("record %s for %s: %w", kind(predicateType), subj, err)
	}
	return res.Existing, nil
}

// SameTransition is an accessory.AttestOptions.Recorded check for writing
// ev: a stored lifecycle event that records the transition ev does, from
// the same predecessor, means a racing writer got there first, and
// writing ev as well would fork the chain.
func SameTransition(ev *lifecycle.Event) func(string, []byte) bool {
	return func(predicateType string, predicate []byte) bool {
		if predicateType != lifecycle.EventPredicateType {
			return false
		}
		got, _, err := lifecycle.DecodeEvent(predicate)
		return err == nil && got.Workflow == ev.Workflow && got.State == ev.State && got.Previous == ev.Previous && got.Sequence == ev.Sequence
	}
}

// confirm reads the chain back and checks that what was written counts.
func (r *Recorder) confirm(ctx context.Context, res *Result, ref, id string, counted func(*verify.LifecycleStatus) bool) (*Result, error) {
	res.ID = id
	after, err := r.v.Lifecycle(ctx, ref)
	if err != nil {
		var ce *lifecycle.ChainError
		if errors.As(err, &ce) && ce.Problem == "fork" {
			return res, fmt.Errorf("%s was recorded, but another event claims the same predecessor (a concurrent writer): the chain is forked and fails verification; %w", id, err)
		}
		return res, fmt.Errorf("%s was recorded, but the chain no longer verifies: %w", id, err)
	}
	res.Status, res.State = after, after.State
	res.Pending = pendingOf(after, id)
	if !counted(after) {
		return res, fmt.Errorf("%s was recorded but does not count (see the status's ignored entries): %w", id, errdef.ErrLifecycle)
	}
	return res, nil
}

// recorded reports whether the chain already records an event entering
// to, with its ID.
func recorded(st *verify.LifecycleStatus, to lifecycle.State, opts EventOptions) (string, bool) {
	if p := openPending(st); opts.Emergency != nil && len(p) > 0 {
		return p[0].ID, true
	}
	l := st.Last()
	if l == nil || l.Event.State != to {
		return "", false
	}
	if to == lifecycle.Review && st.State == lifecycle.Draft {
		return "", false // rejected: a new submission opens a new round
	}
	return l.ID, true
}

// openPending returns the pending emergency retirements that follow the
// newest counted event: those that would extend the chain once approved.
// The others were recorded before the chain moved on; approved, they
// would fork it.
func openPending(st *verify.LifecycleStatus) []lifecycle.Pending {
	head, seq := "", 1
	if l := st.Last(); l != nil {
		head, seq = l.ID, l.Event.Sequence+1
	}
	var out []lifecycle.Pending
	for _, p := range st.Pending {
		if p.Event.Previous == head && p.Event.Sequence == seq {
			out = append(out, p)
		}
	}
	return out
}

func pendingOf(st *verify.LifecycleStatus, id string) *lifecycle.Pending {
	for i := range st.Pending {
		if st.Pending[i].ID == id {
			return &st.Pending[i]
		}
	}
	return nil
}

// signerNames returns ref's scope and the policy names of s's key.
func (r *Recorder) signerNames(ctx context.Context, ref string, s *accessory.Signer) (*trust.Scope, []string, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, nil, fmt.Errorf("signer: %w", err)
	}
	names, scope, err := r.v.SignerNamesFor(ctx, ref, pub)
	if err != nil {
		return nil, nil, err
	}
	if len(names) > 1 {
		// Verification refuses its signatures too: they would count
		// once per name.
		return nil, nil, fmt.Errorf("trust policy %q lists this key as signers %s: a key must be named once, with that name in every role it has: %w",
			scope.Name, strings.Join(names, " and "), errdef.ErrInvalid)
	}
	return scope, names, nil
}

// allowedSigner refuses a key the policy does not allow role. A keyless
// signer (a certificate) is checked after writing, by reading the chain
// back: its identity is known only from the certificate.
func allowedSigner(ref string, from, to lifecycle.State, scope *trust.Scope, role lifecycle.Role, allowed, names []string, s *accessory.Signer) error {
	if s.Certificate() != nil && len(names) == 0 {
		return nil
	}
	if len(intersect(names, allowed)) > 0 {
		return nil
	}
	who := "this key is not in the trust policy"
	if len(names) > 0 {
		who = "this key is " + strings.Join(names, ", ")
	}
	return &lifecycle.TransitionError{Workflow: ref, From: from, To: to, Allowed: lifecycle.Next(from),
		Rule: fmt.Sprintf("trust policy %q: %s is allowed to %s, %s", scope.Name, orNone(allowed), role, who)}
}

func kind(predicateType string) string {
	if predicateType == lifecycle.ApprovalPredicateType {
		return "approval"
	}
	return "lifecycle event"
}

func orNone(l []string) string {
	if len(l) == 0 {
		return "nobody"
	}
	return strings.Join(l, ", ")
}

func intersect(a, b []string) []string {
	var out []string
	for _, x := range a {
		if slices.Contains(b, x) && !slices.Contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func without(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}

// UsesOptions tune CheckUses.
type UsesOptions struct {
	// AllowDeprecated accepts deprecated sub-workflows, with a warning.
	AllowDeprecated bool
}

// CheckUses is the package's CheckUses under r's verifier.
func (r *Recorder) CheckUses(ctx context.Context, p *plan.Plan, opts UsesOptions) ([]string, error) {
	return CheckUses(ctx, r.v, p, opts)
}

// CheckUses checks the lifecycle state of every workflow p uses, under
// v's trust policy: a draft, review, approved, retired or archived one is
// refused (a *lifecycle.StateError, matching errdef.ErrLifecycle), a
// deprecated one too unless opts.AllowDeprecated, which warns instead.
// It returns the warnings.
func CheckUses(ctx context.Context, v *verify.Verifier, p *plan.Plan, opts UsesOptions) ([]string, error) {
	var warnings []string
	for _, d := range p.Dependencies {
		if d.Kind != plan.KindWorkflow {
			continue
		}
		st, err := v.Lifecycle(ctx, d.Pinned)
		if err != nil {
			return warnings, fmt.Errorf("uses %s: %w", d.Ref, err)
		}
		reason, replacement := st.Reason()
		se := &lifecycle.StateError{Reference: d.Pinned, State: st.State, Reason: reason, Replacement: replacement, Emergency: st.Emergency}
		if st.State.Executable() && len(st.Signers) == 0 {
			// A chain says published, but no trusted signer signed the
			// workflow: verify would refuse it, so nothing may use it.
			se.Restriction, se.Reason = "cannot_be_referenced", "no signature by a trusted workflow signer"
			return warnings, fmt.Errorf("uses %s: %w", d.Ref, se)
		}
		switch st.State {
		case lifecycle.Published:
			continue
		case lifecycle.Deprecated:
			se.Restriction = "no_new_references"
			if opts.AllowDeprecated {
				warnings = append(warnings, fmt.Sprintf("uses %s: %v (allowed by --allow-deprecated)", d.Ref, se))
				continue
			}
			return warnings, fmt.Errorf("uses %s: %w (pass --allow-deprecated to reference it anyway)", d.Ref, se)
		default:
			se.Restriction = "cannot_be_referenced"
			return warnings, fmt.Errorf("uses %s: %w", d.Ref, se)
		}
	}
	return warnings, nil
}
