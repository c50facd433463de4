package registryext

import (
	"container/list"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
)

// LifecyclePullRule names the denials of the lifecycle pull rule
// (LifecycleReads).
const LifecyclePullRule = "lifecycle-pulls"

// LifecycleReads restricts pulls of workflow versions by lifecycle state:
// a manifest GET, by tag or digest, of a version in one of States is
// refused with 403 DENIED (rule LifecyclePullRule) and audited as a
// denial, unless the user Distribution authenticated is one of Readers.
// Accessories stay readable to everyone: manifests under cosign's and the
// referrers fallback's tags (sha256-<hex>[.sig|.att|.sbom]), manifests
// with a subject (referrers) and manifests whose every layer is a cosign
// signature, attestation or SBOM, and the referrers API, so auditors and
// verifiers can read a retired version's chain. A HEAD is answered: it
// gives the descriptor only (digest, media type, size), which attaching
// an accessory to the version needs (an OCI referrer names its subject's
// media type and size; the event that archives a retired version is
// one), not the manifest a pull reads. Blobs are not restricted: the rule
// keeps clients from reading a version's manifest, not from fetching
// content whose digest they already hold.
//
// States are looked up with State and cached per repository and digest,
// up to a bound; any manifest stored or deleted in a repository drops
// that repository's cached states, since a new attestation may move a
// version on. That drop is this process's: with several replicas
// (Coordination), a state cached here lives at most Coordination.CacheTTL
// after another replica's write changed it.
type LifecycleReads struct {
	// States are the states whose versions may not be pulled; empty
	// means DefaultRestrictedStates.
	States []lifecycle.State
	// Readers are user names, as Distribution authenticated them
	// (htpasswd user, token subject), that may pull restricted versions
	// anyway: compliance readers. Such pulls are audited (outcome ok,
	// rule LifecyclePullRule). Without auth configured no one is a
	// reader.
	Readers []string
	// Policy is the trust policy file a configuration file names
	// (ociwf.lifecycle.policy), resolved against the file's directory.
	// The registry does not read it: the program that builds the Server
	// makes State from it.
	Policy string
	// State returns the lifecycle state of manifest dgst in repository
	// repo (a name without the registry host); a version with no
	// lifecycle state may return "". It is required. It is called with
	// the pull's context, bounded by LifecycleStateTimeout. An error
	// refuses the pull with 503 UNAVAILABLE: a registry that cannot tell
	// whether a version is retired does not serve it (fail closed);
	// readers are served anyway. State must not pull the version's
	// manifest through this registry as a non-reader, or each pull waits
	// on another; it may read the version's accessories through it.
	State func(ctx context.Context, repo string, dgst digest.Digest) (lifecycle.State, error)
}

// DefaultRestrictedStates are the states LifecycleReads restricts by
// default: retired and archived, the states the immutability policy
// keeps for compliance access only.
func DefaultRestrictedStates() []lifecycle.State {
	return []lifecycle.State{lifecycle.Retired, lifecycle.Archived}
}

// LifecycleStateTimeout bounds one LifecycleReads.State call.
const LifecycleStateTimeout = 30 * time.Second

// stateCacheEntries bounds the cached states of one registry.
const stateCacheEntries = 4096

// lifecycleReads is the pull rule in force.
type lifecycleReads struct {
	states  []lifecycle.State
	readers map[string]bool
	state   func(context.Context, string, digest.Digest) (lifecycle.State, error)
	log     *slog.Logger
	cache   *stateCache
}

// newLifecycleReads checks cfg and returns the rule it configures.
func newLifecycleReads(cfg *LifecycleReads, log *slog.Logger) (*lifecycleReads, error) {
	if cfg.State == nil {
		return nil, fmt.Errorf("lifecycle pull rule: no lifecycle state source (LifecycleReads.State) was given to tell retired versions from others (trust policy %q): %w", cfg.Policy, errdef.ErrInvalid)
	}
	x := &lifecycleReads{states: slices.Clone(cfg.States), readers: map[string]bool{}, state: cfg.State, log: log, cache: newStateCache(stateCacheEntries)}
	if len(x.states) == 0 {
		x.states = DefaultRestrictedStates()
	}
	for _, s := range x.states {
		if !s.Valid() {
			return nil, fmt.Errorf("lifecycle pull rule: unknown state %q; states are %s: %w", s, joinStates(lifecycle.States(), ", "), errdef.ErrInvalid)
		}
	}
	for _, r := range cfg.Readers {
		if strings.TrimSpace(r) == "" {
			return nil, fmt.Errorf("lifecycle pull rule: an empty reader name: %w", errdef.ErrInvalid)
		}
		x.readers[r] = true
	}
	return x, nil
}

func joinStates(states []lifecycle.State, sep string) string {
	s := make([]string, len(states))
	for i, st := range states {
		s[i] = string(st)
	}
	return strings.Join(s, sep)
}

// invalidate drops the cached states of repo's versions.
func (x *lifecycleReads) invalidate(repo string) {
	if x != nil {
		x.cache.invalidate(repo)
	}
}

// Get applies the lifecycle pull rule to a manifest GET.
func (m *manifests) Get(ctx context.Context, dgst digest.Digest, options ...distribution.ManifestServiceOption) (distribution.Manifest, error) {
	man, err := m.ManifestService.Get(ctx, dgst, options...)
	if err != nil || m.r.p.reads == nil {
		return man, err
	}
	if st := stateOf(ctx); st == nil || !st.isPull() {
		return man, nil
	}
	if err := m.r.p.reads.check(ctx, m.r, tagOption(options), dgst, man); err != nil {
		return nil, err
	}
	return man, nil
}

// check applies the rule to a pull from r of man, digest dgst, asked for
// under tag (or by digest).
func (x *lifecycleReads) check(ctx context.Context, r *repository, tag string, dgst digest.Digest, man distribution.Manifest) error {
	if tag != "" && immutability.IsAccessoryTag(tag) || isAccessoryManifest(man) {
		return nil
	}
	user, _ := ctx.Value(distributionUserName).(string)
	reader := user != "" && x.readers[user]
	repo := r.name()
	state, err := x.lookup(ctx, repo, dgst)
	if err != nil {
		if reader {
			x.log.Warn("lifecycle pull rule: state unknown, served to a reader", "repository", repo, "digest", dgst.String(), "user", user, "err", err)
			return nil
		}
		x.log.Error("lifecycle pull rule: state unknown, pull refused", "repository", repo, "digest", dgst.String(), "err", err)
		return errcode.ErrorCodeUnavailable.WithMessage(fmt.Sprintf("the lifecycle state of %s in %s could not be determined, and this registry refuses pulls of versions whose state it cannot tell (it fails closed); see the registry's log", dgst, repo))
	}
	if !slices.Contains(x.states, state) {
		return nil
	}
	d := Denial{Tag: tag, Digest: dgst, Rule: LifecyclePullRule, State: state}
	if reader {
		d.Repository = repo
		d.Message = fmt.Sprintf("%s %s of %s read by compliance reader %s", state, dgst, repo, user)
		if st := stateOf(ctx); st != nil {
			st.setGranted(d)
		}
		return nil
	}
	d.Message = fmt.Sprintf("workflow version %s of %s is %s (%s): this registry refuses pulls of %s versions (rule %s); its accessories stay readable, and compliance readers can be named in its configuration (ociwf.lifecycle.readers)",
		dgst, repo, state, state.Restriction(), joinStates(x.states, ", "), LifecyclePullRule)
	return r.deny(ctx, d)
}

// lookup returns dgst's state, from the cache or State.
func (x *lifecycleReads) lookup(ctx context.Context, repo string, dgst digest.Digest) (lifecycle.State, error) {
	key := cacheKey{repo, dgst}
	state, gen, ok := x.cache.get(key)
	if ok {
		return state, nil
	}
	ctx, cancel := context.WithTimeout(ctx, LifecycleStateTimeout)
	defer cancel()
	state, err := x.state(ctx, repo, dgst)
	if err != nil {
		return "", err
	}
	x.cache.put(key, state, gen)
	return state, nil
}

// isAccessoryManifest reports whether man is a referrer or a manifest
// whose every layer is a cosign signature, attestation or SBOM.
func isAccessoryManifest(man distribution.Manifest) bool {
	if headOf(man).Subject != nil {
		return true
	}
	layers, ok := layersOf(man)
	if !ok || len(layers) == 0 {
		return false
	}
	for _, suffix := range []string{".sig", ".att", ".sbom"} {
		kind := accessoryKindOf(suffix)
		if !slices.ContainsFunc(layers, func(l v1.Descriptor) bool { return !kind.ok(l) }) {
			return true
		}
	}
	return false
}

// stateCache caches states per repository and digest, the least recently
// used dropped past max. A state looked up while its repository was
// invalidated is not stored: gen, taken before the lookup, no longer
// matches.
type stateCache struct {
	mu     sync.Mutex
	max    int
	order  *list.List // of *cached, most recently used first
	items  map[cacheKey]*list.Element
	byRepo map[string]map[digest.Digest]*list.Element
	// gens holds the generation of each repository invalidated since the
	// last reset; a repository not in it is at generation 0. Past max
	// repositories everything is dropped and resets counts it.
	gens   map[string]uint64
	next   uint64
	resets uint64
	// ttl, if positive, bounds how long a state is served from the
	// cache: the writes of other replicas do not invalidate it.
	ttl time.Duration
	now func() time.Time
}

type cacheKey struct {
	repo string
	dgst digest.Digest
}

type cached struct {
	key   cacheKey
	state lifecycle.State
	at    time.Time // when it was stored
}

// generation identifies a repository's cache contents at one moment.
type generation struct{ resets, gen uint64 }

func newStateCache(max int) *stateCache {
	return &stateCache{max: max, order: list.New(), items: map[cacheKey]*list.Element{}, byRepo: map[string]map[digest.Digest]*list.Element{}, gens: map[string]uint64{}, now: time.Now}
}

// get returns the cached state of key, or the generation to store a
// looked-up state under.
func (c *stateCache) get(key cacheKey) (lifecycle.State, generation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		if x := e.Value.(*cached); c.ttl <= 0 || c.now().Sub(x.at) < c.ttl {
			c.order.MoveToFront(e)
			return x.state, generation{}, true
		}
		c.remove(e)
	}
	return "", generation{c.resets, c.gens[key.repo]}, false
}

// put stores state for key unless key's repository was invalidated since
// gen.
func (c *stateCache) put(key cacheKey, state lifecycle.State, gen generation) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if gen != (generation{c.resets, c.gens[key.repo]}) {
		return
	}
	now := c.now()
	if e, ok := c.items[key]; ok {
		x := e.Value.(*cached)
		x.state, x.at = state, now
		c.order.MoveToFront(e)
		return
	}
	e := c.order.PushFront(&cached{key, state, now})
	c.items[key] = e
	if c.byRepo[key.repo] == nil {
		c.byRepo[key.repo] = map[digest.Digest]*list.Element{}
	}
	c.byRepo[key.repo][key.dgst] = e
	for c.order.Len() > c.max {
		c.remove(c.order.Back())
	}
}

func (c *stateCache) remove(e *list.Element) {
	k := e.Value.(*cached).key
	c.order.Remove(e)
	delete(c.items, k)
	if m := c.byRepo[k.repo]; m != nil {
		if delete(m, k.dgst); len(m) == 0 {
			delete(c.byRepo, k.repo)
		}
	}
}

// invalidate drops repo's states and moves it to a new generation.
func (c *stateCache) invalidate(repo string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.byRepo[repo] {
		c.remove(e)
	}
	c.next++
	c.gens[repo] = c.next
	if len(c.gens) > c.max {
		c.order.Init()
		c.items = map[cacheKey]*list.Element{}
		c.byRepo = map[string]map[digest.Digest]*list.Element{}
		c.gens = map[string]uint64{}
		c.resets++
	}
}

// len returns the number of cached states.
func (c *stateCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}
