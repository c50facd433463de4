// Package verify re-checks a published workflow from tag to plan under a
// trust policy: the tag resolves once to a digest; the manifest and every
// blob are re-hashed; cosign signatures and in-toto attestations, stored
// under cosign's tags, as OCI 1.1 referrers or as sigstore bundles
// (cosign v3's format), must be made by keys the
// policy trusts for the repository, name the manifest digest and the
// repository the policy expects (replayed signatures fail), and bind the
// provenance and SBOM to the layers; the DSL layer must recompile to the
// very plan layer; and the lifecycle state, computed from the signed
// event chain stored beside the version (package policy/lifecycle), must
// allow use.
//
// Runtimes embed it through Fetch, which hands back a plan only when all
// of that held. Every verification produces a Report with one entry per
// check; a failure is a *Failure naming the check, what it expected and
// what it found.
package verify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/signature"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// Opener opens the repositories a Verifier reads workflows from and
// reaches their registries for signatures and attestations (an
// accessory.Client). *target.Opener is one; a runtime with its own HTTP
// client implements Open over oras-go's remote.Repository (see the
// example of New).
type Opener interface {
	accessory.Client
	// Open opens ref (registry/repository[:tag|@digest]) for reading.
	Open(ctx context.Context, ref string) (*target.Target, error)
}

// Options tune a Verifier. The zero value verifies with the defaults.
type Options struct {
	// StateStore, if set, keeps the highest lifecycle chain seen per
	// version: a registry serving fewer events than were seen (a
	// rollback) or other ones fails the lifecycle check. Without it only
	// the chain served is checked.
	StateStore lifecycle.StateStore
	// Now returns the verification time; nil means time.Now. Signer
	// validity windows are checked at it, since key-based signatures carry
	// no trusted signing time.
	Now func() time.Time
	// RequireSignedTag fails a reference by tag unless a valid signature
	// records that tag (dev.ociwf.tag, which ociwf sign and publish write).
	// Without it, only a signed tag that differs fails.
	RequireSignedTag bool
	// AllowSkipped accepts versions whose trust policy scope skips
	// verification (trust.Scope.Skip): Verify and Fetch then return their
	// content, re-hashed but otherwise unchecked, with a report that is
	// not Verified and says Skipped. Without it such a version is refused
	// with a *SkippedScope error: nothing vouches for it.
	AllowSkipped bool
	// Logger receives debug output and warnings; nil discards them.
	Logger *slog.Logger
	// LoadKey loads a signer's public key from its reference in the trust
	// policy; nil means accessory.LoadVerifier: PEM public key files, and
	// KMS, k8s:// and gitlab:// references through the providers the
	// program links (package ociwf.dev/attest/kms) or sigstore KMS plugins
	// on PATH (ociwf.dev/cmd/sigstore-kms-*).
	LoadKey func(ctx context.Context, keyRef string) (signature.Verifier, error)
	// Cache, if set, reuses earlier verifications of the same version
	// (repository and manifest digest) under the same policy identity: the
	// scope that applies, its signers' loaded keys and keyless trusted
	// roots, and whether a StateStore is set. The content checks
	// (manifest, blobs, reproducibility) are reused for as long as the
	// version stays in the cache; the verdict of the others (signatures,
	// attestations, SBOM binding, lifecycle) for the cache's TTL, after
	// which they run again, with their registry requests, on the content
	// kept. A verdict inside the TTL costs no registry request for a
	// reference by digest, and one (the tag's resolution) for a reference
	// by tag; the signed tag is checked again for the tag asked for. Only
	// verifications that passed leave a verdict. Report.Cached says which
	// way a verification went. Scopes that skip verification are not
	// cached.
	Cache *Cache
}

// Verifier verifies workflows under one trust policy. It is safe for
// concurrent use; keys are loaded on first use and kept once loaded.
type Verifier struct {
	policy *trust.Policy
	opener Opener
	opts   Options
	reg    *accessory.Registry
	log    *slog.Logger

	mu   sync.Mutex
	keys map[string]signature.Verifier // loaded keys, by reference
	// conds keeps step conditions' type checks across recompiles: the
	// versions of a workflow share their conditions.
	conds *dsl.Conditions
}

// New returns a Verifier for policy that reads through o.
func New(policy *trust.Policy, o Opener, opts Options) (*Verifier, error) {
	if policy == nil {
		return nil, fmt.Errorf("verify: no trust policy: %w", errdef.ErrInvalid)
	}
	if err := policy.Validate(); err != nil {
		return nil, fmt.Errorf("verify: %w", err)
	}
	if op, ok := o.(*target.Opener); o == nil || (ok && op == nil) {
		return nil, fmt.Errorf("verify: no registry opener: %w", errdef.ErrInvalid)
	}
	if lo, ok := o.(interface{ Options() target.Options }); ok && lo.Options().OCILayout {
		return nil, fmt.Errorf("verify: signatures are read from registries, not OCI layouts: %w", errdef.ErrInvalid)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.LoadKey == nil {
		opts.LoadKey = accessory.LoadVerifier
	}
	return &Verifier{
		policy: policy,
		opener: o,
		opts:   opts,
		reg:    accessory.NewRegistry(o, accessory.RegistryOptions{Logger: log}),
		log:    log,
		keys:   map[string]signature.Verifier{},
		conds:  dsl.NewConditions(0),
	}, nil
}

// Workflow is a verified workflow version: its manifest and the exact
// bytes of its blobs.
type Workflow struct {
	Descriptor ocispec.Descriptor
	Manifest   *ociwf.Manifest
	Config     ociwf.Config
	// Source, PlanJSON and SBOM are the layers' bytes.
	Source   []byte
	PlanJSON []byte
	SBOM     []byte
	// Plan is the decoded plan.
	Plan *plan.Plan
}

// Fetch verifies ref under policy and returns its plan only if every check
// passed, or, with opts.AllowSkipped, if ref's trust policy scope skips
// verification (the report then says Skipped, not Verified). It is the one
// call a runtime needs; build a Verifier to verify many references with
// the same keys.
func Fetch(ctx context.Context, ref string, policy *trust.Policy, o Opener, opts Options) (*plan.Plan, *Report, error) {
	v, err := New(policy, o, opts)
	if err != nil {
		return nil, nil, err
	}
	return v.Fetch(ctx, ref)
}

// Fetch verifies ref and returns its plan only if every check passed (or
// its scope skips verification and Options.AllowSkipped accepts that).
func (v *Verifier) Fetch(ctx context.Context, ref string) (*plan.Plan, *Report, error) {
	wf, rep, err := v.Verify(ctx, ref)
	if err != nil {
		return nil, rep, err
	}
	return wf.Plan, rep, nil
}

// Verify runs every check on ref (registry/repository:tag or @digest) and
// returns the verified workflow with the report. On failure the workflow
// is nil, the error is a *Failure (matching errdef.ErrVerification) and
// the report says which check failed; other errors (an unreachable
// registry, a tag that does not exist) are returned as they are, with the
// report so far. A version whose trust policy scope skips verification is
// refused with a *SkippedScope (matching errdef.ErrVerification) unless
// Options.AllowSkipped is set; then its workflow is returned with a report
// that is Skipped and not Verified.
func (v *Verifier) Verify(ctx context.Context, ref string) (*Workflow, *Report, error) {
	start := time.Now()
	ctx, requests := target.CountRequests(ctx)
	rep := newReport(ref)
	defer func() {
		rep.Requests = requests()
		rep.Duration = time.Since(start)
	}()
	r := &run{v: v, rep: rep}
	wf, err := r.run(ctx, ref)
	if err == nil {
		rep.Verified = !rep.Skipped
	}
	v.logReport(ctx, rep, requests(), time.Since(start), err)
	if err != nil {
		return nil, rep, err
	}
	return wf, rep, nil
}

// logReport logs each check's result and the outcome at debug.
func (v *Verifier) logReport(ctx context.Context, rep *Report, requests int64, took time.Duration, err error) {
	if !v.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	for _, c := range rep.Checks {
		attrs := []any{"reference", rep.Reference, "check", c.Name, "status", string(c.Status), "detail", c.Detail}
		if c.Status == Fail {
			attrs = append(attrs, "expected", c.Expected, "actual", c.Actual)
		}
		v.log.DebugContext(ctx, "check", attrs...)
	}
	attrs := []any{"reference", rep.Reference, "digest", rep.Digest.String(), "scope", rep.Scope, "signers", rep.Signers,
		"skipped", rep.Skipped, "malformed", rep.Malformed, "requests", requests, "duration", took}
	if err != nil {
		v.log.DebugContext(ctx, "not verified", append(attrs, "error", err.Error())...)
		return
	}
	msg := "verified"
	if rep.Skipped {
		msg = "not verified"
	}
	v.log.DebugContext(ctx, msg, attrs...)
}

// verifier returns the loaded key of a signer. Only loaded keys are kept:
// a failure (a key file not written yet, a KMS out of reach, a cancelled
// context) is tried again by the next call.
func (v *Verifier) verifier(ctx context.Context, key string) (signature.Verifier, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if sv, ok := v.keys[key]; ok {
		return sv, nil
	}
	sv, err := v.opts.LoadKey(ctx, key)
	if err != nil {
		return nil, err
	}
	v.keys[key] = sv
	return sv, nil
}

// signer is a trusted signer with its loaded key; a keyless signer has
// none (v is nil) and verifies only sigstore bundles, through
// VerifyKeyless.
type signer struct {
	trust.Signer
	v signature.Verifier
}

// signers loads the keys of a scope's workflow signers.
func (v *Verifier) signers(ctx context.Context, s *trust.Scope) ([]signer, error) {
	return v.loadSigners(ctx, s.Name, s.Signers)
}

// loadSigners loads the keys of signers of the scope named scope.
func (v *Verifier) loadSigners(ctx context.Context, scope string, signers []trust.Signer) ([]signer, error) {
	out := make([]signer, 0, len(signers))
	for _, sg := range signers {
		if sg.Keyless != nil {
			out = append(out, signer{Signer: sg})
			continue
		}
		k, err := v.verifier(ctx, sg.Key)
		if err != nil {
			return nil, fmt.Errorf("trust policy %q, signer %q: %w", scope, sg.Name, err)
		}
		out = append(out, signer{Signer: sg, v: k})
	}
	return out, nil
}

// isNoScope reports a policy that trusts nothing for a repository.
func isNoScope(err error) bool { return errors.Is(err, trust.ErrNoScope) }
