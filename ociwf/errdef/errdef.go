// Package errdef holds the sentinel errors shared by every ociwf package.
//
// Errors returned by the library wrap one of these where the cause is one of
// the classes below, so callers (and the CLI's exit codes) decide with
// errors.Is rather than by matching messages.
package errdef

import "errors"

var (
	// ErrInvalid reports input that is malformed or breaks the rules of its
	// format: a workflow, a plan, a reference or an option.
	ErrInvalid = errors.New("invalid input")

	// ErrNotPinned reports a dependency reference that is not pinned to a
	// digest where a pinned one is required (offline compilation).
	ErrNotPinned = errors.New("reference not pinned to a digest")

	// ErrNotWorkflow reports an OCI artifact that is not an ociwf workflow.
	ErrNotWorkflow = errors.New("not an ociwf workflow artifact")

	// ErrVerification reports content that failed an integrity or
	// signature check: a digest or size mismatch, a tampered manifest.
	ErrVerification = errors.New("verification failed")

	// ErrImmutable reports an attempt to change something that is
	// write-once: moving an existing tag to a different digest.
	ErrImmutable = errors.New("immutability violation")

	// ErrTooLarge reports content over one of the documented size limits.
	ErrTooLarge = errors.New("content too large")

	// ErrLifecycle reports a lifecycle violation: using, referencing or
	// pulling a version whose verified lifecycle state forbids it (draft,
	// retired, archived, ...), or a transition the lifecycle state machine
	// or the trust policy does not allow. Like ErrImmutable, the CLI exits
	// 4 with it.
	ErrLifecycle = errors.New("lifecycle violation")

	// ErrUnavailable reports a service the operation depends on that
	// did not answer: a registry (a broken connection, a 5xx or 429 answer
	// once the retry policy gave up, the deadline passed while retrying),
	// or the registry's coordination service (Redis, a lock held past the
	// wait allowed). The operation did not complete; rerunning it once the
	// service is healthy completes it.
	ErrUnavailable = errors.New("service unavailable")
)

// ErrInvalidReference reports a reference or tag the caller gave that does
// not parse or may not be used: a malformed repository, tag or digest, an
// empty tag after the colon, a name cosign reserves for a digest's
// accessories used as a version tag. It matches ErrInvalid too. These are
// mistakes in how a command was called (the CLI exits 2), unlike invalid
// content read from a file or a registry.
var ErrInvalidReference error = invalidReference{}

type invalidReference struct{}

func (invalidReference) Error() string { return "invalid reference" }

// Is makes ErrInvalidReference match ErrInvalid.
func (invalidReference) Is(target error) bool { return target == ErrInvalid }
