package registryext

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// DefaultDrainTimeout is how long Shutdown waits for requests in flight
// when the Distribution configuration sets no http.draintimeout.
const DefaultDrainTimeout = 30 * time.Second

// Defaults of Timeouts.
const (
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultIdleTimeout       = 2 * time.Minute
	DefaultBodyIdleTimeout   = time.Minute
	DefaultBodyGrace         = 30 * time.Second
	DefaultBodyMinRate       = 1024 // bytes per second
)

// Timeouts bounds how long a client may take over its requests, so that
// slow or stalled clients (slowloris) cannot hold connections open. A zero
// field takes its default; a negative one turns that limit off.
//
// A request body must keep coming: no single wait for more of it may
// last longer than BodyIdle, and once BodyGrace has passed since the
// handler started reading, at least BodyMinRate bytes per second must
// have arrived on average over the time beyond BodyGrace. A large upload
// at a steady rate above BodyMinRate is never cut off, however long it
// takes; a body trickling in byte by byte is, after about BodyGrace.
type Timeouts struct {
	// ReadHeader bounds reading a request's headers
	// (DefaultReadHeaderTimeout).
	ReadHeader time.Duration
	// Idle bounds how long a kept-alive connection waits for its next
	// request (DefaultIdleTimeout).
	Idle time.Duration
	// BodyIdle bounds each wait for more of a request body
	// (DefaultBodyIdleTimeout).
	BodyIdle time.Duration
	// BodyGrace is how long a request body may lag behind BodyMinRate at
	// its start (DefaultBodyGrace); negative means no grace.
	BodyGrace time.Duration
	// BodyMinRate is the least average rate of a request body, in bytes
	// per second (DefaultBodyMinRate).
	BodyMinRate int64
}

// withDefaults fills in the defaults and turns negative (off) limits into
// zero.
func (t Timeouts) withDefaults() Timeouts {
	pick := func(d, def time.Duration) time.Duration {
		switch {
		case d == 0:
			return def
		case d < 0:
			return 0
		}
		return d
	}
	t.ReadHeader = pick(t.ReadHeader, DefaultReadHeaderTimeout)
	t.Idle = pick(t.Idle, DefaultIdleTimeout)
	t.BodyIdle = pick(t.BodyIdle, DefaultBodyIdleTimeout)
	t.BodyGrace = pick(t.BodyGrace, DefaultBodyGrace)
	switch {
	case t.BodyMinRate == 0:
		t.BodyMinRate = DefaultBodyMinRate
	case t.BodyMinRate < 0:
		t.BodyMinRate = 0
	}
	return t
}

// ErrBodyTooSlow is the error a handler reads when a request body stalls
// or falls below the minimum rate (Timeouts).
var ErrBodyTooSlow = errors.New("request body too slow")

// limitBodies enforces the body limits of s.timeouts on every request
// with a body.
func (s *Server) limitBodies(next http.Handler) http.Handler {
	t := s.timeouts
	if t.BodyIdle == 0 && t.BodyMinRate == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Body != nil && r.Body != http.NoBody {
			r.Body = &slowBody{ReadCloser: r.Body, rc: http.NewResponseController(w), t: t, start: time.Now()}
		}
		next.ServeHTTP(w, r)
	})
}

// slowBody sets the connection's read deadline before each read of a
// request body: the sooner of BodyIdle from now and the time by which
// the bytes read so far fall below BodyMinRate.
type slowBody struct {
	io.ReadCloser
	rc    *http.ResponseController
	t     Timeouts
	start time.Time
	n     int64
}

func (b *slowBody) Read(p []byte) (int, error) {
	_ = b.rc.SetReadDeadline(b.deadline(time.Now()))
	n, err := b.ReadCloser.Read(p)
	b.n += int64(n)
	switch {
	case err == io.EOF:
		// Past the body: net/http reads on in the background, which
		// no deadline of ours may cut off. After any other error the
		// deadline stays, so that net/http, which would read what is
		// left of a small body before it answers, gives up at once.
		_ = b.rc.SetReadDeadline(time.Time{})
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w: %d bytes in %s: %w", ErrBodyTooSlow, b.n, time.Since(b.start).Round(time.Millisecond), err)
	}
	return n, err
}

func (b *slowBody) deadline(now time.Time) time.Time {
	var d time.Time
	if b.t.BodyIdle > 0 {
		d = now.Add(b.t.BodyIdle)
	}
	if b.t.BodyMinRate > 0 {
		// n bytes are on time until start + grace + n/rate.
		r := b.start.Add(b.t.BodyGrace + time.Duration(float64(b.n)/float64(b.t.BodyMinRate)*float64(time.Second)))
		if d.IsZero() || r.Before(d) {
			d = r
		}
	}
	return d
}
