package verify_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// counter is a reverse proxy in front of a registry that records every
// request it forwards.
type counter struct {
	host string
	mu   sync.Mutex
	seen []string // METHOD PATH
}

func newCounter(t testing.TB, upstream string) *counter {
	t.Helper()
	u := &url.URL{Scheme: "http", Host: upstream}
	c := &counter{}
	rp := &httputil.ReverseProxy{Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(u)
		pr.Out.Host = pr.In.Host // the registry builds upload URLs from it
	}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c.mu.Lock()
		c.seen = append(c.seen, r.Method+" "+r.URL.Path)
		c.mu.Unlock()
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	c.host = strings.TrimPrefix(srv.URL, "http://")
	return c
}

// during returns the requests sent while fn ran.
func (c *counter) during(fn func()) []string {
	c.mu.Lock()
	n := len(c.seen)
	c.mu.Unlock()
	fn()
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.seen[n:]...)
}

// clock is an injectable clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// cacheFixture is a published version behind a counting proxy, its policy
// and a cache on an injectable clock.
type cacheFixture struct {
	*fixture
	c      *counter
	repo   string
	subj   accessory.Subject
	pol    *trust.Policy
	clock  *clock
	cache  *verify.Cache
	digest string // repo@digest
	tag    string // repo:1.4.0
}

const cacheTTL = time.Minute

func newCacheFixture(t *testing.T, k keys) *cacheFixture {
	f := newFixture(t, k)
	c := newCounter(t, f.host)
	repo := c.host + "/wf/release"
	subj := f.release(t, repo+":1.4.0", recipe{})
	clk := newClock()
	return &cacheFixture{
		fixture: f, c: c, repo: repo, subj: subj,
		pol:    trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{}),
		clock:  clk,
		cache:  verify.NewCache(verify.CacheOptions{TTL: cacheTTL, Now: clk.Now}),
		digest: subj.String(), tag: repo + ":1.4.0",
	}
}

func (cf *cacheFixture) verifier(t *testing.T, pol *trust.Policy) *verify.Verifier {
	t.Helper()
	return cf.fixture.verifier(t, pol, verify.Options{Cache: cf.cache})
}

// fetch fetches ref through v and returns the report, the requests the
// proxy saw and the error.
func fetch(t *testing.T, c *counter, v *verify.Verifier, ref string) (*verify.Report, []string, error) {
	t.Helper()
	var rep *verify.Report
	var err error
	seen := c.during(func() { _, rep, err = v.Fetch(context.Background(), ref) })
	return rep, seen, err
}

// contentRequests are the requests among seen that download the
// version's manifest or one of its blobs.
func (cf *cacheFixture) contentRequests(t *testing.T, seen []string) []string {
	t.Helper()
	m := cf.manifest(t, cf.subj)
	paths := []string{"GET /v2/wf/release/manifests/" + cf.subj.Digest.String(), "GET /v2/wf/release/manifests/1.4.0"}
	for _, d := range []digest.Digest{m.Config.Digest, m.Source.Digest, m.Plan.Digest, m.SBOM.Digest} {
		paths = append(paths, "GET /v2/wf/release/blobs/"+d.String())
	}
	var out []string
	for _, s := range seen {
		for _, p := range paths {
			if s == p {
				out = append(out, s)
			}
		}
	}
	return out
}

func TestCacheWarmHitSendsNoRequest(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	v := cf.verifier(t, cf.pol)

	rep, seen, err := fetch(t, cf.c, v, cf.digest)
	if err != nil || !rep.Verified || rep.Cached != "" {
		t.Fatalf("cold fetch: verified=%v cached=%q err=%v", rep.Verified, rep.Cached, err)
	}
	if len(seen) == 0 || rep.Requests == 0 {
		t.Fatalf("cold fetch: the proxy saw %d requests, the report counts %d", len(seen), rep.Requests)
	}
	cold := rep.Checks

	rep, seen, err = fetch(t, cf.c, v, cf.digest)
	if err != nil || !rep.Verified || rep.Cached != verify.CacheHit {
		t.Fatalf("warm fetch: verified=%v cached=%q err=%v", rep.Verified, rep.Cached, err)
	}
	if len(seen) != 0 || rep.Requests != 0 {
		t.Fatalf("warm fetch by digest sent %d requests (report: %d): %v", len(seen), rep.Requests, seen)
	}
	for i, c := range rep.Checks {
		if c.Status != verify.Pass || c.Name != cold[i].Name {
			t.Errorf("warm check %d: %+v; cold: %+v", i, c, cold[i])
		}
	}
	if rep.Digest != cf.subj.Digest || rep.Reference != cf.digest || rep.Tag != "" || len(rep.Signers) != 1 || rep.Lifecycle == nil {
		t.Errorf("warm report: digest %s reference %s tag %q signers %v lifecycle %v", rep.Digest, rep.Reference, rep.Tag, rep.Signers, rep.Lifecycle)
	}

	// A tag is resolved on every call, and that is all.
	rep, seen, err = fetch(t, cf.c, v, cf.tag)
	if err != nil || !rep.Verified || rep.Cached != verify.CacheHit || rep.Tag != "1.4.0" {
		t.Fatalf("warm fetch by tag: verified=%v cached=%q tag=%q err=%v", rep.Verified, rep.Cached, rep.Tag, err)
	}
	if len(seen) != 1 || !strings.HasSuffix(seen[0], "/v2/wf/release/manifests/1.4.0") {
		t.Fatalf("warm fetch by tag sent %v; want only the tag's resolution", seen)
	}

	// The package-level Fetch builds a Verifier per call: the cache is
	// shared all the same, and what it returns is the caller's to modify.
	var p1, p2 any
	seen = cf.c.during(func() {
		p, rep, err := verify.Fetch(context.Background(), cf.digest, cf.pol, cf.o, verify.Options{Cache: cf.cache})
		if err != nil || rep.Cached != verify.CacheHit {
			t.Fatalf("verify.Fetch: cached=%q err=%v", rep.Cached, err)
		}
		p.Steps[0].Run = "changed by the caller"
		p1 = p.Steps[0].Run
		p, _, err = verify.Fetch(context.Background(), cf.digest, cf.pol, cf.o, verify.Options{Cache: cf.cache})
		if err != nil {
			t.Fatal(err)
		}
		p2 = p.Steps[0].Run
	})
	if len(seen) != 0 {
		t.Errorf("verify.Fetch with a warm cache sent %v", seen)
	}
	if p1 == p2 {
		t.Errorf("a plan modified by one caller reached the next one: %v", p2)
	}
	if s := cf.cache.Stats(); s.Misses != 1 || s.Hits != 4 || s.Revalidations != 0 || s.Entries != 1 {
		t.Errorf("stats %+v; want 1 miss, 4 hits, 1 entry", s)
	}

	// Without a cache, a warm verifier sends every request again.
	nc := cf.fixture.verifier(t, cf.pol, verify.Options{})
	for range 2 {
		_, seen, err = fetch(t, cf.c, nc, cf.digest)
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("requests per warm Fetch by digest: %d without the cache, 0 with it", len(seen))
}

func TestCacheTTLExpiryRechecksWithoutDownloading(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	v := cf.verifier(t, cf.pol)
	if _, _, err := fetch(t, cf.c, v, cf.tag); err != nil {
		t.Fatal(err)
	}
	cf.clock.advance(cacheTTL - time.Second)
	if rep, seen, err := fetch(t, cf.c, v, cf.digest); err != nil || rep.Cached != verify.CacheHit || len(seen) != 0 {
		t.Fatalf("inside the TTL: cached=%q, %d requests, err=%v", rep.Cached, len(seen), err)
	}
	cf.clock.advance(time.Second)
	rep, seen, err := fetch(t, cf.c, v, cf.digest)
	if err != nil || !rep.Verified || rep.Cached != verify.CacheRevalidated {
		t.Fatalf("at the TTL: verified=%v cached=%q err=%v", rep.Verified, rep.Cached, err)
	}
	if len(seen) == 0 {
		t.Fatal("at the TTL: no request: signatures and lifecycle were not checked again")
	}
	if got := cf.contentRequests(t, seen); len(got) != 0 {
		t.Errorf("revalidation downloaded content again: %v (all: %v)", got, seen)
	}
	for _, c := range []string{verify.CheckManifest, verify.CheckBlobs, verify.CheckReproducibility} {
		if d := rep.Check(c).Detail; !strings.Contains(d, "kept in the verification cache") {
			t.Errorf("%s: %q", c, d)
		}
	}
	t.Logf("revalidation: %d requests: %v", len(seen), seen)
	// The revalidated verdict starts a new TTL.
	if rep, seen, _ := fetch(t, cf.c, v, cf.digest); rep.Cached != verify.CacheHit || len(seen) != 0 {
		t.Errorf("after revalidation: cached=%q, %d requests", rep.Cached, len(seen))
	}
}

func TestCacheSeesLifecycleChangesAfterTTL(t *testing.T) {
	k := newKeys(t)
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, cf *cacheFixture, rec *govern.Recorder)
		state  lifecycle.State
	}{
		{"retire", func(t *testing.T, cf *cacheFixture, rec *govern.Recorder) {
			if _, err := rec.Transition(context.Background(), cf.tag, cf.signer, lifecycle.Retired, govern.EventOptions{Reason: "test"}); err != nil {
				t.Fatal(err)
			}
		}, lifecycle.Retired},
		{"quarantine", func(t *testing.T, cf *cacheFixture, rec *govern.Recorder) {
			if _, err := rec.Quarantine(context.Background(), cf.tag, cf.signer, "test", govern.EventOptions{}); err != nil {
				t.Fatal(err)
			}
		}, lifecycle.Quarantined},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cf := newCacheFixture(t, k)
			v := cf.verifier(t, cf.pol)
			if _, _, err := fetch(t, cf.c, v, cf.digest); err != nil {
				t.Fatal(err)
			}
			rec, err := govern.New(cf.fixture.verifier(t, cf.pol, verify.Options{}), accessory.NewRegistry(cf.o, accessory.RegistryOptions{}), govern.Options{})
			if err != nil {
				t.Fatal(err)
			}
			tc.change(t, cf, rec)
			// Inside the TTL the verdict stands: that is the price of
			// asking nothing.
			cf.clock.advance(cacheTTL / 2)
			if rep, seen, err := fetch(t, cf.c, v, cf.digest); err != nil || rep.Cached != verify.CacheHit || len(seen) != 0 {
				t.Fatalf("inside the TTL: cached=%q, %d requests, err=%v", rep.Cached, len(seen), err)
			}
			cf.clock.advance(cacheTTL / 2)
			for i := range 2 {
				rep, seen, err := fetch(t, cf.c, v, cf.digest)
				var se *lifecycle.StateError
				if !errors.Is(err, errdef.ErrLifecycle) || !errors.As(err, &se) || se.State != tc.state {
					t.Fatalf("after the TTL (%d): err=%v; want the %s state refused", i, err, tc.state)
				}
				if rep.Cached != verify.CacheRevalidated || rep.Verified {
					t.Errorf("after the TTL (%d): cached=%q verified=%v", i, rep.Cached, rep.Verified)
				}
				if got := cf.contentRequests(t, seen); len(got) != 0 {
					t.Errorf("after the TTL (%d): content downloaded again: %v", i, got)
				}
			}
			// A fresh verifier agrees.
			if _, _, err := verify.Fetch(context.Background(), cf.digest, cf.pol, cf.o, verify.Options{}); !errors.Is(err, errdef.ErrLifecycle) {
				t.Errorf("without the cache: %v", err)
			}
		})
	}
}

func TestCacheKeysVerdictsByPolicy(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	if _, _, err := fetch(t, cf.c, cf.verifier(t, cf.pol), cf.digest); err != nil {
		t.Fatal(err)
	}
	// Another key: the signature check fails; nothing kept is trusted.
	other := trust.KeyPolicy(cf.otherPub, cf.repo, trust.KeyPolicyOptions{})
	rep, seen, err := fetch(t, cf.c, cf.verifier(t, other), cf.digest)
	var f *verify.Failure
	if !errors.As(err, &f) || f.Check != verify.CheckSignatures || rep.Cached != verify.CacheRevalidated || len(seen) == 0 {
		t.Fatalf("other key: cached=%q requests=%d err=%v; want the signatures check failed", rep.Cached, len(seen), err)
	}
	// The same key under another scope: checked again (content reused).
	renamed := trust.KeyPolicy(cf.pub, cf.repo, trust.KeyPolicyOptions{Name: "renamed"})
	rep, seen, err = fetch(t, cf.c, cf.verifier(t, renamed), cf.digest)
	if err != nil || rep.Cached != verify.CacheRevalidated || len(seen) == 0 {
		t.Fatalf("other scope: cached=%q requests=%d err=%v", rep.Cached, len(seen), err)
	}
	if got := cf.contentRequests(t, seen); len(got) != 0 {
		t.Errorf("other scope: content downloaded again: %v", got)
	}
	// A key file replaced under the same name is another policy.
	dir := t.TempDir()
	_, pub := attesttest.KeyPair(t, dir, "swapped")
	swapped := filepath.Join(dir, "trusted.pub")
	b, _ := os.ReadFile(cf.pub)
	if err := os.WriteFile(swapped, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pol := trust.KeyPolicy(swapped, cf.repo, trust.KeyPolicyOptions{Name: "file"})
	if _, _, err := fetch(t, cf.c, cf.verifier(t, pol), cf.digest); err != nil {
		t.Fatal(err)
	}
	if rep, seen, _ := fetch(t, cf.c, cf.verifier(t, pol), cf.digest); rep.Cached != verify.CacheHit || len(seen) != 0 {
		t.Fatalf("same key file: cached=%q, %d requests", rep.Cached, len(seen))
	}
	b, _ = os.ReadFile(pub)
	if err := os.WriteFile(swapped, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, _, err = fetch(t, cf.c, cf.verifier(t, pol), cf.digest)
	if !errors.As(err, &f) || f.Check != verify.CheckSignatures || rep.Cached == verify.CacheHit {
		t.Fatalf("replaced key file: cached=%q err=%v; want the signatures check failed", rep.Cached, err)
	}
}

func TestCacheNeverKeepsAFailure(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	unsigned := cf.repo + ":unsigned"
	subj := cf.release(t, unsigned, recipe{build: versionBuild(t, "9.9.9"), unsigned: true})
	v := cf.verifier(t, cf.pol)
	for i := range 3 {
		rep, seen, err := fetch(t, cf.c, v, subj.String())
		var f *verify.Failure
		if !errors.As(err, &f) || f.Check != verify.CheckSignatures || rep.Cached == verify.CacheHit || len(seen) == 0 {
			t.Fatalf("fetch %d: cached=%q, %d requests, err=%v", i, rep.Cached, len(seen), err)
		}
	}
}

// versionBuild compiles the sample as version ver.
func versionBuild(t *testing.T, ver string) *ociwf.Build {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", sample))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociwf.Compile(context.Background(), benchVersionLine.ReplaceAll(src, []byte("  version: "+ver)), ociwf.CompileOptions{File: sample})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCacheChecksTheSignedTagOnEveryCall(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	next := cf.release(t, cf.repo+":1.5.0", recipe{build: versionBuild(t, "1.5.0")})
	v := cf.verifier(t, cf.pol)
	if _, _, err := fetch(t, cf.c, v, cf.repo+":1.5.0"); err != nil {
		t.Fatal(err)
	}
	// Move tag 1.4.0 onto 1.5.0's manifest: a hit for that digest, but
	// for a tag its signature was not made for.
	cf.copyTag(t, next.String(), cf.tag)
	rep, seen, err := fetch(t, cf.c, v, cf.tag)
	var f *verify.Failure
	if !errors.As(err, &f) || f.Check != verify.CheckReference || !strings.Contains(f.Detail, "moved") {
		t.Fatalf("moved tag: err=%v", err)
	}
	if rep.Cached != verify.CacheHit || len(seen) != 1 || rep.Digest != next.Digest {
		t.Errorf("moved tag: cached=%q digest=%s requests=%v", rep.Cached, rep.Digest, seen)
	}
}

func TestCacheKeepsTheContentItVerified(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	v := cf.verifier(t, cf.pol)
	wf, _, err := v.Verify(context.Background(), cf.digest)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(wf.PlanJSON)
	wf.PlanJSON[0] = 'X' // the caller's copy
	// Whoever can write the registry's storage swaps the plan blob.
	pd := cf.manifest(t, cf.subj).Plan.Digest
	bad := bytes.Replace(want, []byte("build"), []byte("pwned"), 1)
	if err := os.WriteFile(cf.blobPath(pd), bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := verify.Fetch(context.Background(), cf.digest, cf.pol, cf.o, verify.Options{}); err == nil {
		t.Fatal("the tampered blob verified without the cache")
	}
	// The cache serves the bytes it hashed, inside the TTL and after it:
	// the digest names them, and they are not read again.
	for _, d := range []time.Duration{0, cacheTTL} {
		cf.clock.advance(d)
		got, rep, err := v.Verify(context.Background(), cf.digest)
		if err != nil {
			t.Fatalf("+%s: %v", d, err)
		}
		if !bytes.Equal(got.PlanJSON, want) || digest.FromBytes(got.PlanJSON) != pd {
			t.Errorf("+%s (%s): the cache served other plan bytes", d, rep.Cached)
		}
	}
}

func TestCacheEvictsLeastRecentlyUsed(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	cache := verify.NewCache(verify.CacheOptions{MaxEntries: 1, Now: cf.clock.Now})
	next := cf.release(t, cf.repo+":1.5.0", recipe{build: versionBuild(t, "1.5.0")})
	v := cf.fixture.verifier(t, cf.pol, verify.Options{Cache: cache})
	for _, ref := range []string{cf.digest, next.String(), cf.digest} {
		if rep, _, err := fetch(t, cf.c, v, ref); err != nil || rep.Cached != "" {
			t.Fatalf("%s: cached=%q err=%v; want a miss", ref, rep.Cached, err)
		}
	}
	if s := cache.Stats(); s.Entries != 1 || s.Misses != 3 {
		t.Errorf("stats %+v", s)
	}
	if cache.TTL() != verify.DefaultCacheTTL {
		t.Errorf("TTL %s; want the default %s", cache.TTL(), verify.DefaultCacheTTL)
	}
}

func TestCacheConcurrentFetch(t *testing.T) {
	cf := newCacheFixture(t, newKeys(t))
	v := cf.verifier(t, cf.pol)
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for i := range 16 {
		wg.Go(func() {
			for j := range 4 {
				ref := cf.digest
				if (i+j)%2 == 1 {
					ref = cf.tag
				}
				if j == 2 {
					cf.clock.advance(cacheTTL) // some revalidate
				}
				var err error
				if i%2 == 0 {
					_, _, err = v.Fetch(context.Background(), ref)
				} else {
					_, _, err = verify.Fetch(context.Background(), ref, cf.pol, cf.o, verify.Options{Cache: cf.cache})
				}
				if err != nil {
					errs <- fmt.Errorf("goroutine %d, fetch %d: %w", i, j, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	s := cf.cache.Stats()
	if s.Hits+s.Misses+s.Revalidations != 64 || s.Entries != 1 {
		t.Errorf("stats %+v; want 64 fetches of 1 entry", s)
	}
}

// BenchmarkFetchWarm times a warm Fetch by digest of one published
// version on a loopback registry, with one Verifier (keys loaded,
// connections kept alive), without and with a verification cache.
//
//	go test ./attest/verify -run '^$' -bench FetchWarm
func BenchmarkFetchWarm(b *testing.B) {
	dir := b.TempDir()
	host := registrytest.NewAt(b, filepath.Join(dir, "registry"))
	key, pub := attesttest.KeyPair(b, dir, "bench")
	o := attesttest.Opener(b)
	sb := attesttest.Sample(b, benchSample)
	dst, err := o.Open(context.Background(), host+"/wf/release:"+sb.Plan.Workflow.Version)
	if err != nil {
		b.Fatal(err)
	}
	res, err := publish.Publish(context.Background(), dst, sb, accessory.NewRegistry(o, accessory.RegistryOptions{Mode: accessory.TagScheme}), publish.Key(attesttest.Signer(b, key)), publish.Options{Tag: dst.Reference})
	if err != nil {
		b.Fatal(err)
	}
	ref := dst.Name + "@" + res.Descriptor.Digest.String()
	pol := trust.KeyPolicy(pub, dst.Name, trust.KeyPolicyOptions{})
	for _, tc := range []struct {
		name  string
		cache *verify.Cache
	}{{"cache=off", nil}, {"cache=on", verify.NewCache(verify.CacheOptions{TTL: time.Hour})}} {
		b.Run(tc.name, func(b *testing.B) {
			v, err := verify.New(pol, o, verify.Options{Cache: tc.cache})
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := v.Fetch(context.Background(), ref); err != nil {
				b.Fatal(err)
			}
			var requests int64
			for b.Loop() {
				_, rep, err := v.Fetch(context.Background(), ref)
				if err != nil {
					b.Fatal(err)
				}
				requests += rep.Requests
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		})
	}
}
