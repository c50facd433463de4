package verify

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/trust"
)

// Defaults of CacheOptions.
const (
	// DefaultCacheTTL is how long a verdict on signatures, attestations
	// and the lifecycle state is reused: the longest a retirement or a
	// quarantine takes to reach a runtime that caches.
	DefaultCacheTTL = time.Minute
	// DefaultCacheEntries bounds the versions a Cache keeps.
	DefaultCacheEntries = 1024
)

// CacheOptions tune a Cache.
type CacheOptions struct {
	// TTL is how long the outcome of the time-dependent checks
	// (signatures, attestations, SBOM binding, lifecycle state, and the
	// signed tag) is reused without asking the registry; 0 means
	// DefaultCacheTTL. A retirement or quarantine reaches a runtime at
	// most TTL after it is recorded.
	TTL time.Duration
	// MaxEntries bounds the versions kept (least recently used go
	// first); 0 means DefaultCacheEntries.
	MaxEntries int
	// Now is the cache's clock; nil means time.Now.
	Now func() time.Time
}

// Cache keeps the outcome of verifications, for Options.Cache, so that a
// runtime verifying the same version before every run does not ask the
// registry each time. It is safe for concurrent use and may be shared by
// Verifiers with different policies: an entry is keyed by repository and
// manifest digest, and its verdict by the identity of the policy that
// reached it (see Options.Cache).
//
// What a version's manifest digest fixes (the manifest, the config and
// layers, their decoding, and the recompiled plan) is checked once and
// kept for as long as the entry is. What can change while the digest does
// not (the signatures and attestations stored beside it, the lifecycle
// events, the signers' validity windows) is checked again once TTL has
// passed since it last was.
type Cache struct {
	ttl time.Duration
	max int
	now func() time.Time

	mu      sync.Mutex
	lru     *list.List               // of *cacheEntry, most recent first
	entries map[string]*list.Element // by repository@digest
	stats   CacheStats
}

// CacheStats counts what a Cache did.
type CacheStats struct {
	// Hits were served without a registry request (a reference by tag
	// still resolves the tag).
	Hits int64
	// Revalidations re-ran the time-dependent checks on content kept in
	// the cache, without downloading it again.
	Revalidations int64
	// Misses verified from scratch.
	Misses int64
	// Entries is the number of versions kept.
	Entries int
}

// NewCache returns an empty Cache.
func NewCache(opts CacheOptions) *Cache {
	if opts.TTL <= 0 {
		opts.TTL = DefaultCacheTTL
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = DefaultCacheEntries
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{ttl: opts.TTL, max: opts.MaxEntries, now: opts.Now, lru: list.New(), entries: map[string]*list.Element{}}
}

// TTL returns how long a verdict is reused.
func (c *Cache) TTL() time.Duration { return c.ttl }

// Stats returns the counts so far.
func (c *Cache) Stats() CacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Entries = c.lru.Len()
	return s
}

// cacheEntry is one version: its checked content and, once every check
// passed, the verdict on the rest. Both are immutable once stored; an
// update replaces them.
type cacheEntry struct {
	key     string
	content *cachedContent
	verdict *cachedVerdict
}

// cachedContent is what the manifest, blobs and reproducibility checks
// passed on. The checks' details are kept for the report.
type cachedContent struct {
	wf       Workflow
	manifest []byte // the decoded manifest, re-encoded: each hit gets its own copy
	checks   map[string]string
}

// cachedVerdict is a verification that passed, under policy identity id,
// started at checked.
type cachedVerdict struct {
	id         string
	checked    time.Time
	report     *Report
	signedTags []string
}

func cacheKey(repo string, d digest.Digest) string { return repo + "@" + d.String() }

// lookup returns the content and the verdict kept for repo@d; verdict is
// nil unless it was reached under policy identity id less than TTL ago.
func (c *Cache) lookup(repo string, d digest.Digest, id string) (*cachedContent, *cachedVerdict) {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[cacheKey(repo, d)]
	if !ok {
		return nil, nil
	}
	c.lru.MoveToFront(el)
	e := el.Value.(*cacheEntry)
	v := e.verdict
	if v == nil || v.id != id || now.Sub(v.checked) >= c.ttl || now.Before(v.checked) {
		v = nil
	}
	return e.content, v
}

// count records the kind of a verification.
func (c *Cache) count(use string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch use {
	case CacheHit:
		c.stats.Hits++
	case CacheRevalidated:
		c.stats.Revalidations++
	default:
		c.stats.Misses++
	}
}

// store keeps content for repo@d and replaces its verdict with v (nil
// forgets it: a verification that did not pass is never reused).
func (c *Cache) store(repo string, d digest.Digest, content *cachedContent, v *cachedVerdict) {
	key := cacheKey(repo, d)
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.entries[key]; ok {
		e := el.Value.(*cacheEntry)
		if content == nil {
			content = e.content
		}
		el.Value = &cacheEntry{key: key, content: content, verdict: v}
		c.lru.MoveToFront(el)
		return
	}
	if content == nil {
		return
	}
	c.entries[key] = c.lru.PushFront(&cacheEntry{key: key, content: content, verdict: v})
	for c.lru.Len() > c.max {
		last := c.lru.Back()
		c.lru.Remove(last)
		delete(c.entries, last.Value.(*cacheEntry).key)
	}
}

// newCachedContent copies wf, whose content checks passed, for the cache,
// with the checks' details from rep.
func newCachedContent(wf *Workflow, rep *Report) (*cachedContent, error) {
	raw, err := json.Marshal(wf.Manifest)
	if err != nil {
		return nil, err
	}
	cc := &cachedContent{wf: *wf, manifest: raw, checks: map[string]string{}}
	cc.wf.Source, cc.wf.PlanJSON, cc.wf.SBOM = bytes.Clone(wf.Source), bytes.Clone(wf.PlanJSON), bytes.Clone(wf.SBOM)
	cc.wf.Manifest, cc.wf.Plan = nil, nil
	for _, n := range contentChecks() {
		cc.checks[n] = rep.Check(n).Detail
	}
	return cc, nil
}

// contentChecks are the checks whose outcome only the manifest digest
// decides.
func contentChecks() []string { return []string{CheckManifest, CheckBlobs, CheckReproducibility} }

// workflow returns a copy of the cached workflow that its caller may
// modify: the manifest and the plan are decoded again, the layers copied.
func (cc *cachedContent) workflow() (*Workflow, error) {
	wf := cc.wf
	var m ociwf.Manifest
	if err := json.Unmarshal(cc.manifest, &m); err != nil {
		return nil, fmt.Errorf("cached manifest: %w", err)
	}
	p, err := plan.Decode(cc.wf.PlanJSON)
	if err != nil {
		return nil, fmt.Errorf("cached plan: %w", err)
	}
	wf.Manifest, wf.Plan = &m, p
	wf.Source, wf.PlanJSON, wf.SBOM = bytes.Clone(cc.wf.Source), bytes.Clone(cc.wf.PlanJSON), bytes.Clone(cc.wf.SBOM)
	return &wf, nil
}

// copyReport returns a copy of a cached report for reference ref (by tag
// when tag is set), with its lists copied so that the caller may modify
// them; what list elements point to (a lifecycle link's signers, an
// attestation's statement) is shared and must be left as it is.
func copyReport(cached *Report, ref, tag string) *Report {
	rep := *cached
	rep.Reference, rep.Tag = ref, tag
	rep.Checks = slices.Clone(cached.Checks)
	rep.Signers = slices.Clone(cached.Signers)
	rep.SignedTags = slices.Clone(cached.SignedTags)
	rep.Attestations = slices.Clone(cached.Attestations)
	rep.Warnings = slices.Clone(cached.Warnings)
	if cached.Lifecycle != nil {
		st := *cached.Lifecycle
		st.Chain, st.Pending, st.Ignored = slices.Clone(st.Chain), slices.Clone(st.Pending), slices.Clone(st.Ignored)
		rep.Lifecycle = &st
	}
	rep.Requests, rep.Duration, rep.Verified = 0, 0, false
	return &rep
}

// policyID identifies what decides the time-dependent checks of a version
// in scope: the scope as the policy states it, the keys its workflow and
// lifecycle signers load (so a key file replaced under the same name
// changes it), the trusted roots of its keyless signers, and the options
// that change outcomes. It reads no registry.
func (v *Verifier) policyID(ctx context.Context, scope *trust.Scope) (string, error) {
	h := sha256.New()
	raw, err := json.Marshal(scope)
	if err != nil {
		return "", fmt.Errorf("verification cache: %w", err)
	}
	h.Write(raw)
	h.Write([]byte{0})
	signers, err := v.loadSigners(ctx, scope.Name, append(slices.Clone(scope.Signers), scope.LifecycleSigners()...))
	if err != nil {
		return "", err
	}
	roots := map[string]bool{}
	for _, s := range signers {
		if s.v == nil {
			if k := s.Keyless; k != nil && !roots[k.TrustedRoot] {
				roots[k.TrustedRoot] = true
				b, err := os.ReadFile(k.TrustedRoot)
				if err != nil {
					return "", fmt.Errorf("trust policy %q, signer %q: trusted root: %w", scope.Name, s.Name, err)
				}
				d := sha256.Sum256(b)
				fmt.Fprintf(h, "root %s %x\x00", k.TrustedRoot, d)
			}
			continue
		}
		pub, err := s.v.PublicKey()
		if err != nil {
			return "", fmt.Errorf("verification cache: signer %q: %w", s.Name, err)
		}
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return "", fmt.Errorf("verification cache: signer %q: %w", s.Name, err)
		}
		fmt.Fprintf(h, "key %s %x\x00", s.Name, der)
	}
	if v.opts.StateStore != nil {
		fmt.Fprintf(h, "state store %T\x00", v.opts.StateStore)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
