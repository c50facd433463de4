package target

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/opencontainers/go-digest"
	"oras.land/oras-go/v2/registry/remote/retry"

	"ociwf.dev/ociwf/errdef"
)

// RetryPolicy says which registry requests are retried and how long to
// wait between attempts. Only idempotent requests are retried: GET, HEAD,
// PUT (a manifest by tag or digest, the blob upload that completes a
// session by digest) and the POST that opens a blob upload session (one
// opened twice leaves an unused session, which the registry purges).
// PATCH, which feeds a session, and other POSTs are sent once, unless the
// connection is refused (below). A request body is kept to send again
// when it has a known length of at most 16 MiB; a larger or streamed one
// is sent once.
//
// A request is retried on a 5xx answer, 408 and 429, a reset connection,
// a connection closed before the answer, a dial timeout and an attempt cut
// off by AttemptTimeout, with capped exponential backoff and jitter; a
// Retry-After on a 429 or 503 answer (seconds or an HTTP date) is waited
// for instead, up to MaxRetryAfter. A refused connection sent nothing, so
// it is retried alike for every request, idempotent or not (a registry
// restarting). Every wait ends with the request's context, so the
// command's overall deadline bounds them all.
type RetryPolicy struct {
	// MaxRetries is the number of retries after the first attempt; a
	// negative value disables retries.
	MaxRetries int
	// Backoff is the first wait; each retry doubles it, with ±Jitter.
	Backoff time.Duration
	// MaxWait caps one backoff wait.
	MaxWait time.Duration
	// Jitter is the fraction of a wait that is random (0.2 is ±20%).
	Jitter float64
	// MaxRetryAfter caps a wait a registry asks for with Retry-After.
	MaxRetryAfter time.Duration
	// AttemptTimeout bounds the silences of one attempt: the wait for the
	// answer's headers once the request is sent (each read of the
	// request's body starts it again), and each wait for more bytes of
	// the answer's body. An attempt cut off is retried; a GET whose body
	// stops is sent again and read on from where it stopped. Zero means
	// a minute; negative, no bound but the context's.
	AttemptTimeout time.Duration
}

// DefaultRetryPolicy is the policy of an Opener whose Options.Retry is nil:
// five retries after 250ms, 500ms, 1s, 2s and 3s (±20%), a Retry-After
// honoured up to a minute, and a minute for each attempt.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{MaxRetries: 5, Backoff: 250 * time.Millisecond, MaxWait: 3 * time.Second, Jitter: 0.2, MaxRetryAfter: time.Minute, AttemptTimeout: DefaultAttemptTimeout}
}

// DefaultAttemptTimeout is the bound of one attempt when
// RetryPolicy.AttemptTimeout is zero.
const DefaultAttemptTimeout = time.Minute

// NoRetries is a policy that sends every request once.
func NoRetries() RetryPolicy { return RetryPolicy{MaxRetries: -1} }

// RetryTransport returns a RoundTripper that sends requests through base
// and retries them as p says, with oras-go's retry transport. A request
// that fails for good (every attempt spent on a 5xx or 429 answer or a
// broken connection, or the deadline passed while retrying) is an error
// naming the registry and the attempts, matching errdef.ErrUnavailable
// (and context.DeadlineExceeded when the deadline passed).
func RetryTransport(base http.RoundTripper, p RetryPolicy) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	if p == (RetryPolicy{}) {
		p = DefaultRetryPolicy()
	}
	return &retrying{base: base, policy: p}
}

type retrying struct {
	base   http.RoundTripper
	policy RetryPolicy
}

// idempotent reports whether sending req twice does what sending it once
// does. Opening a blob upload session (a POST without a body) counts: a
// session opened twice leaves one unused, which the registry purges.
func idempotent(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodPut:
		return true
	case http.MethodPost:
		return strings.HasSuffix(req.URL.Path, "/blobs/uploads/") && (req.Body == nil || req.Body == http.NoBody)
	}
	return false
}

// maxReplayBytes bounds the request body kept in memory to send it again.
const maxReplayBytes = 16 << 20

// rewindable gives req a GetBody when its body is small and has a known
// length, so it can be sent again; a body that cannot be is sent once.
func rewindable(req *http.Request) error {
	if req.Body == nil || req.Body == http.NoBody || req.GetBody != nil || req.ContentLength <= 0 || req.ContentLength > maxReplayBytes {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, req.ContentLength+1))
	req.Body.Close()
	if err != nil {
		return err
	}
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	req.Body, _ = req.GetBody()
	return nil
}

func (t *retrying) RoundTrip(req *http.Request) (*http.Response, error) {
	a, resp, err := t.send(req, 0)
	return t.checked(req, resp, err, a)
}

// send sends req with its attempts, retries counted from retried (the
// attempts already spent on it): every retry the policy allows for an
// idempotent request, and only those after a refused connection for
// another.
func (t *retrying) send(req *http.Request, retried int) (*attempts, *http.Response, error) {
	a := &attempts{policy: t.policy, backoff: retry.ExponentialBackoff(t.policy.Backoff, 2, t.policy.Jitter), refusedOnly: !idempotent(req), first: retried}
	base := &attempt{base: t.base, bound: t.policy.attemptTimeout(), a: a}
	if t.policy.MaxRetries < 0 {
		resp, err := base.RoundTrip(req)
		return a, resp, err
	}
	if err := rewindable(req); err != nil {
		return a, nil, fmt.Errorf("read the request body: %w", err)
	}
	rt := &retry.Transport{Base: base, Policy: func() retry.Policy { return a }}
	resp, err := rt.RoundTrip(req)
	return a, resp, err
}

func (p RetryPolicy) attemptTimeout() time.Duration {
	if p.AttemptTimeout == 0 {
		return DefaultAttemptTimeout
	}
	return p.AttemptTimeout
}

// checked is failed, then, for an answer passed on, the checks of its
// body (digest, reads that break off) and a Docker-Content-Digest filled
// in where the registry left it out.
func (t *retrying) checked(req *http.Request, resp *http.Response, err error, a *attempts) (*http.Response, error) {
	resp, err = t.failed(req, resp, err, a)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusOK {
		if err := t.fillDigest(req, resp); err != nil {
			return nil, err
		}
	}
	resp.Body = &answer{rc: resp.Body, req: req, want: wantDigest(req, resp), t: t, etag: resp.Header.Get("Docker-Content-Digest"), retried: a.made}
	if req.Method == http.MethodGet && referrersPath.MatchString(req.URL.Path) {
		resp.Body.(*answer).limit = MaxReferrersPageBytes
	}
	return resp, nil
}

// MaxReferrersPageBytes bounds one page of a referrers listing: oras-go's
// MaxMetadataBytes, which it cuts a page at, and go-containerregistry
// (under cosign) does not.
const MaxReferrersPageBytes = 4 << 20

// referrersPath matches a referrers listing.
var referrersPath = regexp.MustCompile(`^/v2/.+/referrers/[^/]+$`)

// PageTooLargeError is a referrers page over MaxReferrersPageBytes: a
// registry that sends one without end cannot make a client hold it. It
// matches errdef.ErrTooLarge.
type PageTooLargeError struct {
	// Host is the registry, URL the page.
	Host, URL string
	// Limit is the most read of one page.
	Limit int64
}

func (e *PageTooLargeError) Error() string {
	return fmt.Sprintf("registry %s: the referrers page %s is over %d MiB, the most read of one page (a registry lists more on further pages)", e.Host, e.URL, e.Limit>>20)
}

// Is reports whether target is errdef.ErrTooLarge.
func (e *PageTooLargeError) Is(target error) bool { return target == errdef.ErrTooLarge }

// StallError is an attempt cut off by RetryPolicy.AttemptTimeout: the
// registry accepted the request and then sent nothing for that long. It
// is a timeout (net.Error), so the attempt is retried.
type StallError struct {
	// Host is the registry; Body says the answer's body stopped, not its
	// headers; Bound is the per-attempt bound.
	Host  string
	Body  bool
	Bound time.Duration
}

func (e *StallError) Error() string {
	what := "no answer"
	if e.Body {
		what = "no more of the answer"
	}
	return fmt.Sprintf("the registry stopped answering: %s within %s (the bound of one attempt)", what, e.Bound)
}

// Timeout reports true: a stalled attempt is retried as a timeout.
func (e *StallError) Timeout() bool { return true }

// Temporary reports true.
func (e *StallError) Temporary() bool { return true }

// attempt sends one attempt of a request under the per-attempt bound and
// counts it.
type attempt struct {
	base  http.RoundTripper
	bound time.Duration
	a     *attempts
}

func (t *attempt) RoundTrip(req *http.Request) (*http.Response, error) {
	t.a.made++
	if t.bound < 0 {
		return t.base.RoundTrip(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stall := &StallError{Host: req.URL.Host, Bound: t.bound}
	timer := time.AfterFunc(t.bound, func() { cancel(stall) })
	out := req.WithContext(ctx)
	var body *sending
	if req.Body != nil && req.Body != http.NoBody {
		// The bound is on silence: while the body is sent, each read of
		// it starts the bound again.
		body = &sending{rc: req.Body, timer: timer, bound: t.bound}
		out.Body = body
	}
	resp, err := t.base.RoundTrip(out)
	if body != nil {
		body.answer() // the transport may read on; the bound is the answer's now
	}
	timer.Stop()
	if err != nil {
		cancel(nil)
		if context.Cause(ctx) == stall {
			return nil, stall
		}
		return nil, err
	}
	resp.Body = &watched{rc: resp.Body, ctx: ctx, cancel: cancel, timer: timer, bound: t.bound, stall: &StallError{Host: req.URL.Host, Body: true, Bound: t.bound}}
	return resp, nil
}

// sending is a request body that restarts the attempt's bound as it is
// read.
type sending struct {
	rc    io.ReadCloser
	timer *time.Timer
	bound time.Duration

	mu       sync.Mutex
	answered bool
}

func (s *sending) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	s.mu.Lock()
	if !s.answered {
		s.timer.Reset(s.bound)
	}
	s.mu.Unlock()
	return n, err
}

// answer stops the reads restarting the bound: the answer came.
func (s *sending) answer() {
	s.mu.Lock()
	s.answered = true
	s.mu.Unlock()
}

func (s *sending) Close() error { return s.rc.Close() }

// watched is a body whose reads each wait at most bound for bytes.
type watched struct {
	rc     io.ReadCloser
	ctx    context.Context
	cancel context.CancelCauseFunc
	timer  *time.Timer
	bound  time.Duration
	stall  *StallError
}

func (w *watched) Read(p []byte) (int, error) {
	w.timer.Reset(w.bound)
	n, err := w.rc.Read(p)
	w.timer.Stop()
	if err != nil && err != io.EOF && context.Cause(w.ctx) == w.stall {
		return n, w.stall
	}
	return n, err
}

func (w *watched) Close() error {
	w.timer.Stop()
	err := w.rc.Close()
	w.cancel(nil)
	return err
}

// pathDigest matches the digest a manifest or blob path names.
var pathDigest = regexp.MustCompile(`/(manifests|blobs)/(sha256:[a-f0-9]{64})$`)

// wantDigest returns the digest a full answer to req must have, or "".
func wantDigest(req *http.Request, resp *http.Response) digest.Digest {
	if req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
		return ""
	}
	if m := pathDigest.FindStringSubmatch(req.URL.Path); m != nil {
		return digest.Digest(m[2])
	}
	return ""
}

// maxManifestBytes bounds the manifest read to compute a digest the
// registry did not send.
const maxManifestBytes = 4 << 20

// fillDigest sets the Docker-Content-Digest of a manifest answer that
// lacks it: the digest named by the request, or else the digest of the
// manifest's bytes (read with a GET for a HEAD).
func (t *retrying) fillDigest(req *http.Request, resp *http.Response) error {
	if resp.Header.Get("Docker-Content-Digest") != "" || !strings.Contains(req.URL.Path, "/manifests/") {
		return nil
	}
	if m := pathDigest.FindStringSubmatch(req.URL.Path); m != nil {
		resp.Header.Set("Docker-Content-Digest", m[2])
		return nil
	}
	var body []byte
	var err error
	switch req.Method {
	case http.MethodGet:
		body, err = io.ReadAll(io.LimitReader(resp.Body, maxManifestBytes+1))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
	case http.MethodHead:
		get := req.Clone(req.Context())
		get.Method = http.MethodGet
		var r *http.Response
		if r, err = t.RoundTrip(get); err == nil {
			body, err = io.ReadAll(io.LimitReader(r.Body, maxManifestBytes+1))
			r.Body.Close()
		}
	default:
		return nil
	}
	switch {
	case err != nil:
		return fmt.Errorf("registry %s sent no Docker-Content-Digest for %s, and reading the manifest to compute it failed: %w", req.URL.Host, req.URL.Path, err)
	case len(body) > maxManifestBytes:
		return fmt.Errorf("registry %s sent no Docker-Content-Digest for %s, and the manifest is over %d bytes: %w", req.URL.Host, req.URL.Path, maxManifestBytes, errdef.ErrTooLarge)
	}
	resp.Header.Set("Docker-Content-Digest", digest.FromBytes(body).String())
	return nil
}

// DigestMismatchError reports content fetched by digest whose bytes have
// another digest: the registry, or something between, served other bytes
// than the request named. It matches errdef.ErrVerification. The bytes
// were all read before it is reported, so a reader that hashes them
// itself finds the same.
type DigestMismatchError struct {
	// Host is the registry, URL the request.
	Host, URL string
	// Expected is the digest the request named, Actual that of the bytes.
	Expected, Actual digest.Digest
}

// Error names the registry, what was asked and what to do.
func (e *DigestMismatchError) Error() string {
	return fmt.Sprintf("registry %s served other bytes than %s names (%s): nothing was stored from them; rerun the command, and if this persists the registry's storage or a proxy is corrupting content", e.Host, e.URL, e.Actual)
}

// Is reports whether target is errdef.ErrVerification.
func (e *DigestMismatchError) Is(target error) bool { return target == errdef.ErrVerification }

// answer is a response body whose read failures name the registry and
// say what to do, and which, for content named by digest, fails at its
// end when the bytes have another digest.
type answer struct {
	rc   io.ReadCloser
	req  *http.Request
	want digest.Digest
	h    digest.Digester
	// t sends a GET again when its body stalls: etag is the answer's
	// Docker-Content-Digest, read the bytes passed on, retried the
	// attempts spent.
	t       *retrying
	etag    string
	read    int64
	retried int
	// limit, when not zero, is the most of the body read: one byte more
	// fails the read.
	limit int64
}

func (a *answer) Read(p []byte) (int, error) {
	n, err := a.rc.Read(p)
	a.read += int64(n)
	var stall *StallError
	if errors.As(err, &stall) {
		if n > 0 {
			err = nil // pass these bytes on; the next read resumes
		} else if err = a.resume(); err == nil {
			return a.Read(p)
		}
	}
	over := a.read - a.limit // of these n bytes, past the limit
	if a.limit > 0 && a.read == a.limit && err == nil {
		// Look one byte ahead, so that a reader that stops at the limit
		// (oras-go's) learns that the page goes on.
		var one [1]byte
		m := 0
		for m == 0 && err == nil {
			m, err = a.rc.Read(one[:])
		}
		a.read += int64(m)
	}
	if a.limit > 0 && a.read > a.limit {
		a.rc.Close()
		return n - int(max(0, over)), &PageTooLargeError{Host: a.req.URL.Host, URL: a.req.URL.Redacted(), Limit: a.limit}
	}
	if a.want != "" {
		if a.h == nil {
			a.h = digest.Canonical.Digester()
		}
		a.h.Hash().Write(p[:n])
	}
	switch {
	case err == io.EOF && a.want != "" && a.h.Digest() != a.want:
		return n, &DigestMismatchError{Host: a.req.URL.Host, URL: a.req.URL.Redacted(), Expected: a.want, Actual: a.h.Digest()}
	case err != nil && err != io.EOF && a.req.Context().Err() == nil:
		return n, fmt.Errorf("registry %s: reading the answer to %s %s: %w (rerun the command once the registry answers again)", a.req.URL.Host, a.req.Method, a.req.URL.Redacted(), errors.Join(err, errdef.ErrUnavailable))
	}
	return n, err
}

func (a *answer) Close() error { return a.rc.Close() }

// resume sends a GET whose body stalled again, as long as retries are
// left, and skips what was read already. The new answer must be the same
// content: named by digest, or with the same Docker-Content-Digest.
func (a *answer) resume() error {
	stalled := &StallError{Host: a.req.URL.Host, Body: true, Bound: a.t.policy.attemptTimeout()}
	if a.req.Method != http.MethodGet || a.t.policy.MaxRetries < 0 || a.retried > a.t.policy.MaxRetries || (a.want == "" && a.etag == "") {
		return stalled
	}
	req := a.req.Clone(a.req.Context())
	at, resp, err := a.t.send(req, a.retried)
	a.retried = at.first + at.made
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || (a.etag != "" && resp.Header.Get("Docker-Content-Digest") != a.etag) {
		resp.Body.Close()
		return stalled
	}
	if _, err := io.CopyN(io.Discard, resp.Body, a.read); err != nil {
		resp.Body.Close()
		return err
	}
	a.rc.Close()
	a.rc = resp.Body
	return nil
}

// failed turns the last outcome of req into an error when the registry
// did not do what was asked: a transport error, or a 5xx or 429 answer
// with no retries left. Other answers are the client's to read. The
// error names the registry and the attempts and matches
// errdef.ErrUnavailable; http.Client adds the method and URL.
func (t *retrying) failed(req *http.Request, resp *http.Response, err error, a *attempts) (*http.Response, error) {
	n := a.first + a.made
	tries := "1 attempt"
	if n > 1 {
		tries = strconv.Itoa(n) + " attempts"
	}
	switch {
	case err != nil && req.Context().Err() != nil && a.waiting != "":
		return nil, fmt.Errorf("registry %s: %s, the last %s, stopped by the deadline (--timeout) or an interrupt while waiting %s: %w", req.URL.Host, tries, a.last, a.waiting, errors.Join(err, errdef.ErrUnavailable))
	case err != nil && req.Context().Err() != nil:
		return nil, fmt.Errorf("registry %s: %s, stopped by the deadline (--timeout) or an interrupt: %w", req.URL.Host, tries, errors.Join(err, errdef.ErrUnavailable))
	case err != nil && errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("registry %s refused the connection, %s: %w", req.URL.Host, tries, errors.Join(err, errdef.ErrUnavailable))
	case err != nil:
		return nil, fmt.Errorf("registry %s: %s: %w", req.URL.Host, tries, errors.Join(err, errdef.ErrUnavailable))
	case resp.StatusCode >= 500 || resp.StatusCode == http.StatusTooManyRequests:
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		resp.Body.Close()
		said := strings.TrimSpace(string(msg))
		if said != "" {
			said = " (" + said + ")"
		}
		return nil, fmt.Errorf("registry %s answered %s after %s%s: %w", req.URL.Host, resp.Status, tries, said, errdef.ErrUnavailable)
	}
	return resp, nil
}

// attempts is the retry.Policy of one request: it counts the attempts
// made and says what the last wait was for.
type attempts struct {
	policy  RetryPolicy
	backoff retry.Backoff
	// refusedOnly retries only a refused connection (a request that is
	// not idempotent).
	refusedOnly bool
	// first is the attempts spent before, made those sent since.
	first, made int
	// last is the last answer, waiting the wait after it (empty for a
	// backoff).
	last, waiting string
}

func (a *attempts) Retry(attempt int, resp *http.Response, err error) (time.Duration, error) {
	a.last, a.waiting = "", ""
	if resp != nil {
		a.last = "answered " + resp.Status
	}
	if a.first+attempt >= a.policy.MaxRetries {
		return -1, nil
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// Nothing was sent: safe to send again, whatever the request.
		return min(a.backoff(a.first+attempt, nil), a.policy.MaxWait), nil
	}
	if a.refusedOnly {
		return -1, nil
	}
	if err != nil && errors.Is(err, io.EOF) {
		// The connection closed before an answer: for an idempotent
		// request, as retryable as a reset.
		err = io.ErrUnexpectedEOF
	}
	if ok, err := retry.DefaultPredicate(resp, err); err != nil || !ok {
		return -1, err
	}
	if d, ok := retryAfter(resp); ok {
		d = min(d, a.policy.MaxRetryAfter)
		a.waiting = "the Retry-After " + d.String() + " it asked for"
		return d, nil
	}
	return min(a.backoff(a.first+attempt, nil), a.policy.MaxWait), nil
}

// retryAfter returns the wait a 429 or 503 answer asks for.
func retryAfter(resp *http.Response) (time.Duration, bool) {
	if resp == nil || (resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable) {
		return 0, false
	}
	v := resp.Header.Get("Retry-After")
	if v == "" {
		return 0, false
	}
	if s, err := strconv.ParseInt(v, 10, 64); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0), true
	}
	return 0, false
}
