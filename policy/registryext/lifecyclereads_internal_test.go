package registryext

import (
	"fmt"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/lifecycle"
)

// The state cache keeps at most its bound, dropping the least recently
// used; a state looked up across an invalidation of its repository is not
// stored; other repositories keep theirs; the generations kept are
// bounded too.
func TestStateCache(t *testing.T) {
	c := newStateCache(3)
	key := func(repo string, i int) cacheKey { return cacheKey{repo, digest.FromString(fmt.Sprint(i))} }
	store := func(k cacheKey, s lifecycle.State) {
		t.Helper()
		if _, gen, ok := c.get(k); !ok {
			c.put(k, s, gen)
		}
	}
	for i := range 3 {
		store(key("a", i), lifecycle.Retired)
	}
	c.get(key("a", 0)) // used: 1 is now the oldest
	store(key("b", 0), lifecycle.Published)
	if c.len() != 3 {
		t.Fatalf("%d cached, want 3", c.len())
	}
	if _, _, ok := c.get(key("a", 1)); ok {
		t.Error("the least recently used state is still cached")
	}
	for _, k := range []cacheKey{key("a", 0), key("a", 2), key("b", 0)} {
		if _, _, ok := c.get(k); !ok {
			t.Errorf("%v dropped", k)
		}
	}

	// A lookup that a PUT to its repository overtook is not stored.
	_, gen, _ := c.get(key("b", 1))
	c.invalidate("b")
	c.put(key("b", 1), lifecycle.Retired, gen)
	if _, _, ok := c.get(key("b", 1)); ok {
		t.Error("a state looked up before its repository changed was stored")
	}
	if _, _, ok := c.get(key("b", 0)); ok {
		t.Error("an invalidated repository's state is still cached")
	}
	if _, _, ok := c.get(key("a", 0)); !ok {
		t.Error("another repository's state was dropped")
	}
	// Many repositories invalidated: the generations are reset, with
	// the states, and a lookup from before is not stored either.
	_, gen, _ = c.get(key("a", 5))
	for i := range 10 {
		c.invalidate(fmt.Sprint("r", i))
	}
	if len(c.gens) > 3 || c.len() != 0 {
		t.Errorf("%d generations and %d states kept past the bound", len(c.gens), c.len())
	}
	c.put(key("a", 5), lifecycle.Retired, gen)
	if _, _, ok := c.get(key("a", 5)); ok {
		t.Error("a state looked up before a reset was stored")
	}
}

// With a TTL (several replicas, whose writes this process does not see),
// a cached state is served until it is that old and then looked up again.
func TestStateCacheTTL(t *testing.T) {
	c := newStateCache(10)
	now := time.Unix(1000, 0)
	c.ttl, c.now = 5*time.Second, func() time.Time { return now }
	k := cacheKey{"a", digest.FromString("x")}
	_, gen, _ := c.get(k)
	c.put(k, lifecycle.Published, gen)
	now = now.Add(4 * time.Second)
	if s, _, ok := c.get(k); !ok || s != lifecycle.Published {
		t.Fatalf("state within the TTL: %q, %v", s, ok)
	}
	now = now.Add(time.Second)
	if _, _, ok := c.get(k); ok {
		t.Fatal("a state as old as the TTL is still served")
	}
	if c.len() != 0 {
		t.Errorf("%d cached after expiry, want 0", c.len())
	}
}
