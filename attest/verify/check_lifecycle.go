package verify

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// lifecycle computes the version's state from its verified event chain,
// checks it against the rollback state store and applies the scope's
// rules for the state.
func (r *run) lifecycle(ctx context.Context) error {
	st, warnings, err := r.v.lifecycleStatus(ctx, r.scope, r.subj, r.found, true, false)
	r.rep.Warnings = append(r.rep.Warnings, warnings...)
	if st != nil {
		r.rep.Lifecycle = st
	}
	var ce *lifecycle.ChainError
	var rb *lifecycle.RollbackError
	switch {
	case errors.As(err, &ce):
		f := r.rep.fail(CheckLifecycle, ce.Error(), "one unbroken chain of events by signers allowed each transition", ce.Problem)
		f.Cause = ce
		return f
	case errors.As(err, &rb):
		exp, got := fmt.Sprintf("at least %d events, event %d %s", rb.Seen.Sequence, rb.Seen.Sequence, rb.Seen.ID), fmt.Sprintf("%d events", rb.Served.Sequence)
		if rb.Different {
			got = fmt.Sprintf("event %d %s", rb.Served.Sequence, rb.Served.ID)
		}
		f := r.rep.fail(CheckLifecycle, rb.Error(), exp, got)
		f.Cause = rb
		return f
	case err != nil:
		return fmt.Errorf("verify %s: lifecycle: %w", r.subj, err)
	}
	state := st.State
	reason, replacement := st.Reason()
	refuse := &lifecycle.StateError{Reference: r.rep.Reference, State: state, Restriction: state.Restriction(), Reason: reason, Replacement: replacement, Emergency: st.Emergency}
	detail := describeState(st)
	switch r.scope.Lifecycle.For(state) {
	case trust.Deny:
		f := r.rep.fail(CheckLifecycle, fmt.Sprintf("%s; trust policy %q denies workflows in state %s", refuse.Error(), r.scope.Name, state), "a state the policy allows", string(state))
		f.Cause = refuse
		return f
	case trust.Warn:
		r.rep.warn(CheckLifecycle, "%s (trust policy %s warns)", refuse.Error(), r.scope.Name)
	default:
		r.rep.pass(CheckLifecycle, "%s", detail)
	}
	return nil
}

// describeState says what a status is, for reports.
func describeState(st *lifecycle.Status) string {
	switch {
	case st.Implicit:
		return "state published: signed, no lifecycle events"
	case len(st.Chain) == 0:
		return "state " + string(st.State) + ": no lifecycle events"
	}
	l := st.Last()
	s := fmt.Sprintf("state %s: %d event(s) in one chain, newest %s by %s", st.State, len(st.Chain), l.ID, strings.Join(l.Signers, ", "))
	if st.Emergency {
		s += " (emergency)"
	}
	if a := st.After; a != nil {
		s += fmt.Sprintf("; it follows event %s (%s, sequence %d), signed by no signer of this trust policy: the history up to it was not evaluated (a trust policy naming the lifecycle signers checks it)", a.ID, a.State, a.Sequence)
	}
	return s
}

// lifecycleStatus verifies the stored lifecycle events and approvals of
// subj with the scope's lifecycle signers, evaluates them, and checks the
// result against the rollback state store (recording it when it is
// newer). signed says whether the version carries a valid workflow
// signature. A statement counts only when its subject names subj's
// repository as the scope's signed identity rule accepts it (as
// signatures must), or, with anyHost, the same repository path on any
// registry host. The warnings name every fact that did not count.
func (v *Verifier) lifecycleStatus(ctx context.Context, scope *trust.Scope, subj accessory.Subject, found *accessory.Found, signed, anyHost bool) (*lifecycle.Status, []string, error) {
	signers, err := v.loadSigners(ctx, scope.Name, scope.LifecycleSigners())
	if err != nil {
		return nil, nil, err
	}
	now := v.opts.Now()
	in := lifecycle.Input{Workflow: subj.Digest.String(), Roles: scope.Lifecycle.Roles, Signers: scope.SignerNames(), Signed: signed}
	var warnings []string
	// unverified keeps a well-formed event about subj that no trusted
	// signer signed: it never counts, but a counted event may link to it
	// (lifecycle.Input.Unverified).
	unverified := func(st *in_toto.Statement) {
		if st.PredicateType != lifecycle.EventPredicateType || !accessory.Covers(st, subj.Digest) {
			return
		}
		if _, ok := namesRepository(scope, st, subj, anyHost); !ok {
			return
		}
		raw, err := json.Marshal(st.Predicate)
		if err != nil {
			return
		}
		if e, id, err := lifecycle.DecodeEvent(raw); err == nil {
			in.Unverified = append(in.Unverified, lifecycle.Signed[lifecycle.Event]{Value: *e, ID: id})
		}
	}
	add := func(st *in_toto.Statement, names []string, where string) {
		if len(names) == 0 {
			if st != nil {
				warnings = append(warnings, fmt.Sprintf("ignored %s %s: not signed by a signer trusted for %s", kindOf(st.PredicateType), where, subj.Repository))
				unverified(st)
			}
			return
		}
		if !accessory.Covers(st, subj.Digest) {
			warnings = append(warnings, fmt.Sprintf("ignored %s %s by %s: about another artifact (%s)", kindOf(st.PredicateType), where, strings.Join(names, ", "), subjects(st)))
			return
		}
		if named, ok := namesRepository(scope, st, subj, anyHost); !ok {
			rule := string(scope.SignedIdentity.Type)
			if rule == "" {
				rule = string(trust.Exact)
			}
			warnings = append(warnings, fmt.Sprintf("ignored %s %s by %s: names another repository (%s, not %s: replayed across repositories; signedIdentity %s)",
				kindOf(st.PredicateType), where, strings.Join(names, ", "), named, scope.SignedReference(subj.Repository), rule))
			return
		}
		raw, err := json.Marshal(st.Predicate)
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("ignored %s %s by %s: %v", kindOf(st.PredicateType), where, strings.Join(names, ", "), err))
			return
		}
		switch st.PredicateType {
		case lifecycle.EventPredicateType:
			e, id, err := lifecycle.DecodeEvent(raw)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("ignored lifecycle event %s by %s: %v", where, strings.Join(names, ", "), err))
				return
			}
			in.Events = append(in.Events, lifecycle.Signed[lifecycle.Event]{Value: *e, ID: id, Signers: names})
		case lifecycle.ApprovalPredicateType:
			a, id, err := lifecycle.DecodeApproval(raw)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("ignored approval %s by %s: %v", where, strings.Join(names, ", "), err))
				return
			}
			in.Approvals = append(in.Approvals, lifecycle.Signed[lifecycle.Approval]{Value: *a, ID: id, Signers: names})
		}
	}
	if found != nil {
		for i, a := range found.Attestations {
			claimed, err := a.Statement()
			if err != nil || !isLifecyclePredicate(claimed.PredicateType) {
				continue
			}
			var names []string
			var st *in_toto.Statement
			for _, s := range signers {
				if s.v == nil {
					continue // keyless: bundles only
				}
				got, err := a.Verify(ctx, s.v)
				if err != nil {
					continue
				}
				if !s.ValidAt(now) {
					warnings = append(warnings, fmt.Sprintf("ignored %s #%d by %s: the key is outside its validity window (%s)", kindOf(claimed.PredicateType), i+1, s.Name, window(s.Signer)))
					continue
				}
				names, st = append(names, s.Name), got
			}
			if st == nil {
				st = claimed
			}
			if err := oneSigner(scope, names); err != nil {
				return nil, warnings, err
			}
			add(st, names, fmt.Sprintf("#%d (%s)", i+1, a.Mode))
		}
		for _, b := range found.Bundles {
			env, err := b.Bundle().Envelope()
			if err != nil {
				continue
			}
			claimed, err := env.Statement()
			if err != nil || !isLifecyclePredicate(claimed.GetPredicateType()) {
				continue
			}
			var names []string
			var st *in_toto.Statement
			for _, s := range signers {
				got, at, err := verifyBundle(ctx, b, s, bundleCheckOpts(s), subj.Digest)
				if err != nil {
					continue
				}
				if at.IsZero() && !s.ValidAt(now) {
					warnings = append(warnings, fmt.Sprintf("ignored %s bundle %s by %s: the key is outside its validity window (%s)", kindOf(claimed.GetPredicateType()), b.Manifest, s.Name, window(s.Signer)))
					continue
				}
				names, st = append(names, s.Name), got.Statement
			}
			if st == nil {
				warnings = append(warnings, fmt.Sprintf("ignored %s bundle %s: not signed by a signer trusted for %s", kindOf(claimed.GetPredicateType()), b.Manifest, subj.Repository))
				continue
			}
			if err := oneSigner(scope, names); err != nil {
				return nil, warnings, err
			}
			add(st, names, "bundle "+b.Manifest)
		}
	}
	st, err := lifecycle.Evaluate(in)
	if err != nil {
		return st, warnings, err
	}
	for _, ig := range st.Ignored {
		warnings = append(warnings, fmt.Sprintf("ignored %s %s by %s: %s", ig.Kind, ig.ID, strings.Join(ig.Signers, ", "), ig.Reason))
	}
	for _, p := range st.Pending {
		warnings = append(warnings, fmt.Sprintf("emergency retirement %s by %s is pending: %d of %d emergency approvers (%s)", p.ID, strings.Join(p.Signers, ", "), len(p.Agree), p.Needed, strings.Join(p.Agree, ", ")))
	}
	if store := v.opts.StateStore; store != nil {
		// Chains are kept per repository and per set of signers: the
		// same content stored in two repositories (a mirror, a copy
		// without its events) has two chains, and a policy trusting other
		// signers counts other events.
		key, err := stateKey(signers, subj)
		if err != nil {
			return st, warnings, err
		}
		seen, ok, err := store.Load(ctx, key)
		if err != nil {
			return st, warnings, fmt.Errorf("lifecycle state store: %w", err)
		}
		if ok {
			if err := lifecycle.CheckRollback(seen, st); err != nil {
				return st, warnings, err
			}
		}
		if h := st.Head(); h.Sequence > seen.Sequence {
			if err := store.Save(ctx, key, h); err != nil {
				return st, warnings, fmt.Errorf("lifecycle state store: %w", err)
			}
		}
	}
	return st, warnings, nil
}

// namesRepository reports whether a subject of st with subj's digest
// names subj's repository as the scope's signed identity rule accepts it
// (any name under digestOnly), or, with anyHost, the same repository
// path on another registry host. Otherwise it returns the names found.
// Events and approvals name only the digest in their predicate; the
// statement's subject name (cosign's and ociwf's attestations name the
// repository) is what keeps one repository's chain from being replayed
// onto the same content stored in another.
func namesRepository(scope *trust.Scope, st *in_toto.Statement, subj accessory.Subject, anyHost bool) (string, bool) {
	if scope.SignedIdentity.Type == trust.DigestOnly {
		return "", true
	}
	var seen []string
	for _, s := range st.Subject {
		if s.Digest[subj.Digest.Algorithm().String()] != subj.Digest.Encoded() {
			continue
		}
		if scope.AcceptsIdentity(subj.Repository, s.Name) || (anyHost && repoPath(s.Name) != "" && repoPath(s.Name) == repoPath(subj.Repository)) {
			return s.Name, true
		}
		name := s.Name
		if name == "" {
			name = "no repository"
		}
		seen = append(seen, name)
	}
	return strings.Join(seen, ", "), false
}

// repoPath is a repository name without its registry host.
func repoPath(name string) string {
	_, path, ok := strings.Cut(name, "/")
	if !ok {
		return ""
	}
	return path
}

// oneSigner refuses a signature that verifies for several of the scope's
// signers: one key (or certificate identity) listed under two names, which
// would count twice towards an approval quorum.
func oneSigner(scope *trust.Scope, names []string) error {
	if len(names) < 2 {
		return nil
	}
	return fmt.Errorf("trust policy %q: one signature verifies as signers %q and %q (the same key or identity under two names): a signer must be named once, with that name in every role it has: %w",
		scope.Name, names[0], names[1], errdef.ErrInvalid)
}

func isLifecyclePredicate(t string) bool {
	return t == lifecycle.EventPredicateType || t == lifecycle.ApprovalPredicateType
}

func kindOf(predicateType string) string {
	if predicateType == lifecycle.ApprovalPredicateType {
		return "approval"
	}
	return "lifecycle event"
}

// LifecycleStatus is a version's verified lifecycle, as `ociwf status` shows it:
// its state computed from the event chain, who signed the workflow, and
// every fact that did not count.
type LifecycleStatus struct {
	Reference  string `json:"reference"`
	Repository string `json:"repository"`
	Digest     string `json:"digest"`
	Scope      string `json:"scope,omitempty"`
	// Signers are the trusted workflow signers whose signatures verified.
	Signers []string `json:"signers,omitempty"`
	// SignedTags are the tags those signatures record.
	SignedTags []string `json:"signedTags,omitempty"`
	*lifecycle.Status
	// ChainVerified is false when the chain failed (a fork, a broken
	// link, a rollback): State is then only what the registry serves.
	ChainVerified bool     `json:"chainVerified"`
	Warnings      []string `json:"warnings,omitempty"`
}

// MovedTag reports whether tag was moved onto this version: its valid
// signatures record version tags and none of them is tag (the verifier's
// reference check fails such a tag).
func (s *LifecycleStatus) MovedTag(tag string) bool { return movedTag(tag, s.SignedTags) }

// Lifecycle verifies ref's signatures and lifecycle facts, without the
// content checks, and returns its lifecycle state. It answers for
// versions every state, retired and archived ones included (their
// content stays readable for audit); a broken, forked or rolled-back
// chain is an error (a *lifecycle.ChainError or *lifecycle.RollbackError,
// matching errdef.ErrVerification) returned with the status so far.
func (v *Verifier) Lifecycle(ctx context.Context, ref string) (*LifecycleStatus, error) {
	return v.lifecycleOf(ctx, ref, false)
}

// lifecycleOf is Lifecycle; anyHost counts statements naming the
// repository's path on any registry host (see lifecycleStatus).
func (v *Verifier) lifecycleOf(ctx context.Context, ref string, anyHost bool) (*LifecycleStatus, error) {
	tgt, err := v.opener.Open(ctx, ref)
	if err != nil {
		return nil, err
	}
	scope, err := v.policy.For(scopeName(tgt.Name))
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", ref, err)
	}
	if scope.Skip {
		return nil, fmt.Errorf("status %s: trust policy %q skips verification, so nothing vouches for a lifecycle state: %w", ref, scope.Name, errdef.ErrVerification)
	}
	subj, desc, err := accessory.ResolveSubject(ctx, tgt.Storage, tgt.Ref)
	if err != nil {
		return nil, fmt.Errorf("status %s: %w", ref, err)
	}
	out := &LifecycleStatus{Reference: ref, Repository: tgt.Name, Digest: desc.Digest.String(), Scope: scope.Name}
	found, err := v.reg.Find(ctx, subj)
	if err != nil {
		return out, fmt.Errorf("status %s: read signatures and attestations: %w", ref, err)
	}
	signers, err := v.signers(ctx, scope)
	if err != nil {
		return out, err
	}
	r := &run{v: v, rep: newReport(ref), scope: scope, subj: subj, found: found}
	signErr := r.signatures(ctx, signers)
	var f *Failure
	if signErr != nil && !errors.As(signErr, &f) {
		return out, signErr
	}
	out.Signers, out.SignedTags = r.rep.Signers, r.rep.SignedTags
	st, warnings, err := v.lifecycleStatus(ctx, scope, subj, found, signErr == nil, anyHost)
	out.Status, out.Warnings = st, warnings
	if err != nil {
		return out, fmt.Errorf("status %s: %w", ref, err)
	}
	out.ChainVerified = true
	return out, nil
}

// SignerNamesFor returns the scope governing ref and the names, among
// its workflow and lifecycle signers with keys, that pub (a signing key's
// public key, as accessory.Signer.PublicKey returns it) belongs to: what
// the policy will count that key's signatures as, for writers to refuse
// before they sign what would not count.
func (v *Verifier) SignerNamesFor(ctx context.Context, ref string, pub crypto.PublicKey) ([]string, *trust.Scope, error) {
	tgt, err := v.opener.Open(ctx, ref)
	if err != nil {
		return nil, nil, err
	}
	scope, err := v.policy.For(scopeName(tgt.Name))
	if err != nil {
		return nil, nil, err
	}
	signers, err := v.loadSigners(ctx, scope.Name, scope.LifecycleSigners())
	if err != nil {
		return nil, nil, err
	}
	eq, ok := pub.(interface{ Equal(crypto.PublicKey) bool })
	if !ok {
		return nil, scope, nil
	}
	var names []string
	for _, s := range signers {
		if s.v == nil {
			continue
		}
		if k, err := s.v.PublicKey(); err == nil && eq.Equal(k) {
			names = append(names, s.Name)
		}
	}
	return names, scope, nil
}

// StateOf returns the verified lifecycle state of the version with
// manifest digest dgst in repository repo (a name without a host) of the
// registry at host, as a registry's pull rule asks for it
// (registryext.LifecycleReads.State). A chain that does not verify is an
// error: the rule then fails closed. The registry does not know the name
// its clients reach it by, so events and approvals whose statement names
// repo on any host count, besides those the signed identity rule accepts
// (all Lifecycle counts); a replay from another repository is ignored.
func (v *Verifier) StateOf(host string) func(ctx context.Context, repo string, dgst digest.Digest) (lifecycle.State, error) {
	return func(ctx context.Context, repo string, dgst digest.Digest) (lifecycle.State, error) {
		st, err := v.lifecycleOf(ctx, host+"/"+repo+"@"+dgst.String(), true)
		if err != nil {
			return "", err
		}
		return st.State, nil
	}
}

// stateKey is the state store key of subj's chain as signers see it:
// REPOSITORY@DIGEST, then the first 16 hex digits of the SHA-256 of the
// sorted set of their identities (public keys in DER, keyless identity
// and issuer), whatever the policy names them or wherever their key
// files are.
func stateKey(signers []signer, subj accessory.Subject) (string, error) {
	var ids []string
	for _, s := range signers {
		if s.v == nil {
			k := s.Keyless
			ids = append(ids, "keyless\x00"+k.Identity+"\x00"+k.IdentityRegexp+"\x00"+k.Issuer+"\x00"+k.IssuerRegexp)
			continue
		}
		pub, err := s.v.PublicKey()
		if err != nil {
			return "", fmt.Errorf("lifecycle state key: %w", err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("lifecycle state key: %w", err)
		}
		ids = append(ids, "key\x00"+string(der))
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	return fmt.Sprintf("%s@%s#%.16s", subj.Repository, subj.Digest, digest.FromString(strings.Join(ids, "\x01")).Encoded()), nil
}

// StateKey returns the key under which a StateStore keeps the chain of
// the version ref names as this verifier sees it (REPOSITORY@DIGEST#SIGNERS:
// see stateKey), for tools that inspect or seed a store.
func (v *Verifier) StateKey(ctx context.Context, ref string) (string, error) {
	tgt, err := v.opener.Open(ctx, ref)
	if err != nil {
		return "", err
	}
	scope, err := v.policy.For(scopeName(tgt.Name))
	if err != nil {
		return "", err
	}
	subj, _, err := accessory.ResolveSubject(ctx, tgt.Storage, tgt.Ref)
	if err != nil {
		return "", err
	}
	signers, err := v.loadSigners(ctx, scope.Name, scope.LifecycleSigners())
	if err != nil {
		return "", err
	}
	return stateKey(signers, subj)
}
