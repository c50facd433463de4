package ociwf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
)

// ContentError reports content that is not what its descriptor says: over
// its size limit, with an invalid digest, missing, of another length or
// re-hashing to another digest. It matches errdef.ErrVerification, except
// a size over the limit, which matches errdef.ErrTooLarge, and missing
// content, which matches oras-go's errdef.ErrNotFound.
type ContentError struct {
	// Descriptor is the content asked for.
	Descriptor ocispec.Descriptor
	// Problem says what is wrong, as a phrase that follows the content's
	// name: "re-hashes to another digest", "is truncated", "is missing
	// from the registry", ...
	Problem string
	// Expected and Actual say what the descriptor promised and what was
	// found.
	Expected, Actual string
	// Err is the underlying error, if one was reported.
	Err error

	class error // the errdef sentinel it matches, if any
}

// Error names the content, the problem and what was found.
func (e *ContentError) Error() string {
	return fmt.Sprintf("content %s %s: expected %s, got %s", e.Descriptor.Digest, e.Problem, e.Expected, e.Actual)
}

// Unwrap returns the errdef sentinel the problem matches and the
// underlying error.
func (e *ContentError) Unwrap() []error {
	var out []error
	for _, err := range []error{e.class, e.Err} {
		if err != nil {
			out = append(out, err)
		}
	}
	return out
}

// FetchAll fetches the content desc names from src, at most limit bytes,
// and returns it once its size and digest are those of desc. Content that
// is not what desc says is a *ContentError; other failures (the network,
// a cancelled ctx) are returned wrapped as they are.
func FetchAll(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor, limit int64) ([]byte, error) {
	var buf bytes.Buffer
	if desc.Size > 0 && desc.Size <= limit {
		buf.Grow(int(min(desc.Size, 32<<20)))
	}
	if err := fetchTo(ctx, src, desc, limit, &buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// fetchTo streams the content desc names from src into w, at most limit
// bytes, hashing it as it goes, and checks its size and digest at the end.
// A failure may leave part of the content in w.
func fetchTo(ctx context.Context, src content.Fetcher, desc ocispec.Descriptor, limit int64, w io.Writer) error {
	bad := func(problem, expected, actual string, cause, class error) error {
		return &ContentError{Descriptor: desc, Problem: problem, Expected: expected, Actual: actual, Err: cause, class: class}
	}
	want := fmt.Sprintf("%s (%d bytes)", desc.Digest, desc.Size)
	if desc.Size < 0 || desc.Size > limit {
		return bad("is too large", fmt.Sprintf("at most %d bytes", limit), fmt.Sprintf("%d bytes", desc.Size), nil, errdef.ErrTooLarge)
	}
	if err := desc.Digest.Validate(); err != nil {
		return bad("has an invalid digest", "a valid digest", err.Error(), err, errdef.ErrVerification)
	}
	rc, err := src.Fetch(ctx, desc)
	if err != nil {
		switch {
		case errors.Is(err, orasdef.ErrNotFound):
			return bad("is missing from the registry", want, "not found", err, nil)
		case isContentMismatch(err):
			return bad("differs from its descriptor", want, err.Error(), err, errdef.ErrVerification)
		}
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	defer rc.Close()
	h := desc.Digest.Algorithm().Hash()
	// One byte past the size tells content that is longer than desc.
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(rc, desc.Size+1))
	// The transport's own digest check reports, at the end of the bytes,
	// what the check below finds.
	var dm *target.DigestMismatchError
	var cause error
	if errors.As(err, &dm) {
		cause, err = err, nil
	}
	if err != nil {
		if isContentMismatch(err) {
			return bad("was cut short", want, fmt.Sprintf("%d bytes, then %v", n, err), err, errdef.ErrVerification)
		}
		return fmt.Errorf("fetch %s: %w", desc.Digest, err)
	}
	got := digest.NewDigest(desc.Digest.Algorithm(), h)
	if n != desc.Size || got != desc.Digest {
		problem := "re-hashes to another digest"
		if n < desc.Size {
			problem = "is truncated"
		}
		return bad(problem, want, fmt.Sprintf("%s (%d bytes)", got, n), cause, errdef.ErrVerification)
	}
	return nil
}

// isContentMismatch recognises content that does not match what was asked
// for, as oras-go and the HTTP stack report it while fetching or reading.
// oras-go (v2.7.0, registry/remote/repository.go) has no sentinel for a
// response whose Content-Length differs from the descriptor's size: it
// returns fmt.Errorf("%s %q: mismatch Content-Length", method, url), so
// that one case is matched by its text, here only.
func isContentMismatch(err error) bool {
	return errors.Is(err, content.ErrMismatchedDigest) || errors.Is(err, content.ErrTrailingData) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, content.ErrInvalidDescriptorSize) ||
		strings.Contains(err.Error(), "mismatch Content-Length")
}
