// Package faults puts a fault-injecting reverse proxy, in-process and on
// loopback, in front of a real registry for the lifetime of a test. Rules
// pick requests by method, path and occurrence ("the 1st PUT of a
// manifest", "every 3rd request") and break them the ways registries and
// networks break: an error status, 429 with Retry-After, a reset
// connection, a response lost after the registry acted on the request, a
// truncated body, a stall, other bytes than asked for, a missing
// Docker-Content-Digest, a referrers list that leaves an entry out. Rules
// can be replaced while the proxy runs, so a test can rerun a command once
// the fault clears.
package faults

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Action is what a rule does to a request it picks.
type Action int

// The actions.
const (
	// Status answers Rule.Status (500, 502, 503, ...) without reaching the
	// registry.
	Status Action = iota
	// TooMany answers 429 Too Many Requests with Rule.RetryAfter (seconds
	// or an HTTP date) as Retry-After, without reaching the registry.
	TooMany
	// Reset closes the connection without an answer, without reaching the
	// registry.
	Reset
	// Lost forwards the request, so the registry acts on it, and then
	// closes the connection instead of answering: the client never learns
	// the outcome.
	Lost
	// Truncate forwards the request and cuts the response body off
	// halfway, closing the connection.
	Truncate
	// Stall holds the request without an answer until the client gives up
	// or the test ends (a slow loris).
	Stall
	// OtherBytes forwards the request and serves a body of the same
	// length with its bytes changed.
	OtherBytes
	// DropDigest forwards the request and removes Docker-Content-Digest
	// from the answer.
	DropDigest
	// DropReferrer forwards the request and, for a referrers list, leaves
	// its first entry out.
	DropReferrer
	// Pass forwards the request unchanged: with Rule.Do, a hook at a
	// chosen request (stop the registry, say).
	Pass
)

var actionNames = map[Action]string{
	Status: "status", TooMany: "429", Reset: "reset", Lost: "lost", Truncate: "truncate",
	Stall: "stall", OtherBytes: "other-bytes", DropDigest: "drop-digest", DropReferrer: "drop-referrer",
	Pass: "pass",
}

// String names the action.
func (a Action) String() string {
	if s, ok := actionNames[a]; ok {
		return s
	}
	return "action(" + strconv.Itoa(int(a)) + ")"
}

// Rule picks requests and says what to do to them.
type Rule struct {
	// Method is the request method to match; empty matches any.
	Method string
	// Path matches the request path; nil matches any.
	Path *regexp.Regexp
	// Nth fires on the Nth matching request only (1 is the first).
	Nth int
	// Every fires on every Every-th matching request.
	Every int
	// Times bounds how often the rule fires; zero is no bound.
	Times int
	// Action is what is done; Status and RetryAfter qualify it.
	Action Action
	// Status is the status Status answers (500 when zero).
	Status int
	// RetryAfter is the Retry-After TooMany sends ("1" when empty).
	RetryAfter string
	// Do, if set, runs when the rule fires, before the action, while
	// this request and every other one the proxy receives meanwhile wait
	// (to restart the registry under the client, say).
	Do func()
}

// Common paths.
var (
	// ManifestPath matches a manifest by tag or digest.
	ManifestPath = regexp.MustCompile(`^/v2/.+/manifests/[^/]+$`)
	// BlobPath matches a blob or a blob upload.
	BlobPath = regexp.MustCompile(`^/v2/.+/blobs/`)
	// ReferrersPath matches a referrers list.
	ReferrersPath = regexp.MustCompile(`^/v2/.+/referrers/[^/]+$`)
)

type rule struct {
	Rule
	seen, fired int
}

// Proxy is a fault-injecting reverse proxy in front of one registry.
type Proxy struct {
	srv  *httptest.Server
	ctx  context.Context
	mu   sync.Mutex
	rule []*rule
	// fired counts the faults injected since Start.
	fired int
}

type actionKey struct{}

// Start starts a proxy in front of the registry at upstream (host:port)
// on a random loopback port and closes it when the test ends. It forwards
// every request until rules are set.
func Start(t testing.TB, upstream string) *Proxy {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: upstream}
	p := &Proxy{ctx: t.Context()}
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(u)
			pr.Out.Host = pr.In.Host // the registry builds upload URLs from it
		},
		ModifyResponse: modify,
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			if errors.Is(err, errLost) {
				hangUp(w)
				return
			}
			w.WriteHeader(http.StatusBadGateway)
		},
	}
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := p.pick(r)
		if !ok || a.Action == Pass {
			rp.ServeHTTP(w, r)
			return
		}
		switch a.Action {
		case Status:
			code := a.Status
			if code == 0 {
				code = http.StatusInternalServerError
			}
			http.Error(w, fmt.Sprintf(`{"errors":[{"code":"UNKNOWN","message":"injected %d"}]}`, code), code)
		case TooMany:
			ra := a.RetryAfter
			if ra == "" {
				ra = "1"
			}
			w.Header().Set("Retry-After", ra)
			http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}`, http.StatusTooManyRequests)
		case Reset:
			hangUp(w)
		case Stall:
			select {
			case <-r.Context().Done():
			case <-p.ctx.Done():
			}
			hangUp(w)
		default:
			rp.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), actionKey{}, a.Action)))
		}
	}))
	t.Cleanup(p.srv.Close)
	return p
}

// hangUp closes the connection under w without an answer.
func hangUp(w http.ResponseWriter) {
	if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
		c.Close()
		return
	}
	panic(http.ErrAbortHandler)
}

// Addr returns the proxy's host:port, to use in references instead of the
// registry's.
func (p *Proxy) Addr() string { return strings.TrimPrefix(p.srv.URL, "http://") }

// Set replaces the rules; with none, every request is forwarded.
func (p *Proxy) Set(rules ...Rule) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rule = nil
	for _, r := range rules {
		p.rule = append(p.rule, &rule{Rule: r})
	}
}

// Fired returns how many faults were injected since Start.
func (p *Proxy) Fired() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.fired
}

// pick returns the first rule that fires for r.
func (p *Proxy) pick(r *http.Request) (Rule, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, ru := range p.rule {
		if (ru.Method != "" && ru.Method != r.Method) || (ru.Path != nil && !ru.Path.MatchString(r.URL.Path)) {
			continue
		}
		ru.seen++
		fire := (ru.Nth == 0 && ru.Every == 0) || ru.seen == ru.Nth || (ru.Every > 0 && ru.seen%ru.Every == 0)
		if !fire || (ru.Times > 0 && ru.fired >= ru.Times) {
			continue
		}
		if ru.Action == DropReferrer && (r.Method != http.MethodGet || !ReferrersPath.MatchString(r.URL.Path)) {
			continue
		}
		ru.fired++
		p.fired++
		if ru.Do != nil {
			ru.Do() // under p.mu: other requests wait in pick
		}
		return ru.Rule, true
	}
	return Rule{}, false
}

// modify applies the fault the request carries to the registry's answer.
func modify(resp *http.Response) error {
	a, ok := resp.Request.Context().Value(actionKey{}).(Action)
	if !ok {
		return nil
	}
	switch a {
	case Lost:
		resp.Body.Close()
		return errLost
	case Truncate:
		n := resp.ContentLength / 2
		if n < 0 {
			n = 16
		}
		resp.Body = &cut{r: io.LimitReader(resp.Body, n), c: resp.Body}
	case OtherBytes:
		resp.Body = &flip{rc: resp.Body}
	case DropDigest:
		resp.Header.Del("Docker-Content-Digest")
	case DropReferrer:
		raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		resp.Body.Close()
		if err != nil {
			return err
		}
		var idx map[string]json.RawMessage
		var list []json.RawMessage
		if json.Unmarshal(raw, &idx) == nil && json.Unmarshal(idx["manifests"], &list) == nil && len(list) > 0 {
			idx["manifests"], _ = json.Marshal(list[1:])
			raw, _ = json.Marshal(idx)
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
		resp.ContentLength = int64(len(raw))
		resp.Header.Set("Content-Length", strconv.Itoa(len(raw)))
	}
	return nil
}

var errLost = errors.New("faults: answer lost")

// cut reads r, then fails: the answer ends before its Content-Length.
type cut struct {
	r io.Reader
	c io.Closer
}

func (c *cut) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if err == io.EOF {
		return n, io.ErrUnexpectedEOF
	}
	return n, err
}

func (c *cut) Close() error { return c.c.Close() }

// flip changes every byte it passes on.
type flip struct{ rc io.ReadCloser }

func (f *flip) Read(p []byte) (int, error) {
	n, err := f.rc.Read(p)
	for i := range p[:n] {
		p[i] ^= 0x20
	}
	return n, err
}

func (f *flip) Close() error { return f.rc.Close() }
