package verify

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// Names of the checks, in the order they run.
const (
	CheckReference       = "reference"
	CheckManifest        = "manifest"
	CheckBlobs           = "blobs"
	CheckSignatures      = "signatures"
	CheckAttestations    = "attestations"
	CheckSBOM            = "sbom"
	CheckReproducibility = "reproducibility"
	CheckLifecycle       = "lifecycle"
)

// Checks lists the check names in order.
func Checks() []string {
	return []string{CheckReference, CheckManifest, CheckBlobs, CheckSignatures, CheckAttestations, CheckSBOM, CheckReproducibility, CheckLifecycle}
}

// Values of Report.Cached.
const (
	CacheHit         = "hit"
	CacheRevalidated = "revalidated"
)

// Status is the outcome of one check.
type Status string

// Statuses. Only Fail fails a verification; Skipped marks checks that did
// not run (after a failure, or when the policy or configuration leaves
// nothing to check) and Warn a check that passed with a warning.
const (
	Pass    Status = "pass"
	Fail    Status = "fail"
	Warn    Status = "warn"
	Skipped Status = "skipped"
)

// Check is one entry of a report.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Detail says what was checked, or why the check failed or was skipped.
	Detail string `json:"detail,omitempty"`
	// Expected and Actual are set on failure.
	Expected string `json:"expected,omitempty"`
	Actual   string `json:"actual,omitempty"`
}

// Report is the outcome of verifying one reference.
type Report struct {
	Reference  string        `json:"reference"`
	Repository string        `json:"repository"`
	Tag        string        `json:"tag,omitempty"`
	Digest     digest.Digest `json:"digest,omitempty"`
	// Scope is the name of the trust policy scope applied.
	Scope string `json:"scope,omitempty"`
	// Verified is true when every check ran and passed.
	Verified bool `json:"verified"`
	// Skipped is true when the trust policy scope skips verification:
	// only the reference, the manifest and the blobs were checked, and
	// Verified is false.
	Skipped bool `json:"skipped,omitempty"`
	// Checks has one entry per check, in order.
	Checks []Check `json:"checks"`
	// Signers are the trusted signers whose signatures were accepted.
	Signers []string `json:"signers,omitempty"`
	// SignedTags are the tags the accepted signatures record.
	SignedTags []string `json:"signedTags,omitempty"`
	// Attestations are the accepted attestations.
	Attestations []Attestation `json:"attestations,omitempty"`
	// Lifecycle is the version's evaluated lifecycle: its state and the
	// verified event chain.
	Lifecycle *lifecycle.Status `json:"lifecycle,omitempty"`
	// Malformed counts the stored signatures and attestations that do
	// not parse as cosign's and were skipped; Warnings names each.
	Malformed int `json:"malformed,omitempty"`
	// Warnings are things a user must hear about even though the
	// verification passed (a skipped scope, a deprecated version).
	Warnings []string `json:"warnings,omitempty"`
	// Cached says how Options.Cache served the verification: CacheHit
	// (a verdict reached less than the cache's TTL ago was reused, with
	// no request but a tag's resolution) or CacheRevalidated (the
	// content's checks were reused and the rest ran again); empty when
	// everything ran.
	Cached string `json:"cached,omitempty"`
	// Requests counts the HTTP requests the verification sent.
	Requests int64         `json:"requests"`
	Duration time.Duration `json:"durationNanos"`
}

// Attestation is an accepted attestation.
type Attestation struct {
	PredicateType string         `json:"predicateType"`
	Signer        string         `json:"signer"`
	Mode          accessory.Mode `json:"mode"`
	// Statement is the signed in-toto statement.
	Statement json.RawMessage `json:"statement"`
}

// Failed returns the failed check, or nil.
func (r *Report) Failed() *Check {
	for i := range r.Checks {
		if r.Checks[i].Status == Fail {
			return &r.Checks[i]
		}
	}
	return nil
}

// Check returns the entry for the named check, or nil.
func (r *Report) Check(name string) *Check {
	for i := range r.Checks {
		if r.Checks[i].Name == name {
			return &r.Checks[i]
		}
	}
	return nil
}

func newReport(ref string) *Report {
	r := &Report{Reference: ref}
	for _, n := range Checks() {
		r.Checks = append(r.Checks, Check{Name: n, Status: Skipped, Detail: "not run"})
	}
	return r
}

func (r *Report) set(name string, c Check) {
	c.Name = name
	*r.Check(name) = c
}

func (r *Report) pass(name, format string, args ...any) {
	r.set(name, Check{Status: Pass, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) skip(name, format string, args ...any) {
	r.set(name, Check{Status: Skipped, Detail: fmt.Sprintf(format, args...)})
}

func (r *Report) warn(name, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.set(name, Check{Status: Warn, Detail: msg})
	r.Warnings = append(r.Warnings, msg)
}

// fail records a failed check and returns the error for it.
func (r *Report) fail(name, detail, expected, actual string) *Failure {
	r.set(name, Check{Status: Fail, Detail: detail, Expected: expected, Actual: actual})
	for i := range r.Checks {
		if r.Checks[i].Status == Skipped && r.Checks[i].Detail == "not run" {
			r.Checks[i].Detail = "not run: the " + name + " check failed"
		}
	}
	return &Failure{Reference: r.Reference, Check: name, Detail: detail, Expected: expected, Actual: actual}
}

// Failure is the error of a failed verification: which check failed, what
// it expected and what it found. It matches errdef.ErrVerification.
type Failure struct {
	Reference string
	Check     string
	Detail    string
	Expected  string
	Actual    string
	// Cause, if set, is the more specific error the failure is also: a
	// *lifecycle.StateError (matching errdef.ErrLifecycle) when the
	// version's lifecycle state is denied, a *lifecycle.ChainError when
	// its event chain is forked or broken, a *lifecycle.RollbackError when
	// the registry serves less of it than was seen before.
	Cause error
}

func (f *Failure) Error() string {
	msg := fmt.Sprintf("verify %s: %s check failed: %s", f.Reference, f.Check, f.Detail)
	if f.Expected != "" || f.Actual != "" {
		msg += fmt.Sprintf(" (expected %s; got %s)", f.Expected, f.Actual)
	}
	return msg
}

// Unwrap makes a Failure match errdef.ErrVerification, and its Cause.
func (f *Failure) Unwrap() []error {
	if f.Cause != nil {
		return []error{errdef.ErrVerification, f.Cause}
	}
	return []error{errdef.ErrVerification}
}

// SkippedScope is the error of a version whose trust policy scope skips
// verification, when the caller did not accept that (Options.AllowSkipped).
// It matches errdef.ErrVerification.
type SkippedScope struct {
	Reference string
	// Scope is the name of the scope that skips verification.
	Scope string
}

func (e *SkippedScope) Error() string {
	return fmt.Sprintf("verify %s: trust policy %q skips verification: signatures and attestations were not checked, so the content is refused", e.Reference, e.Scope)
}

// Unwrap makes a SkippedScope match errdef.ErrVerification.
func (e *SkippedScope) Unwrap() error { return errdef.ErrVerification }
