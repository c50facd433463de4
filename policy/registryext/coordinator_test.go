package registryext_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/registryext"
)

// A Redis lease that another holder took over (its key expired while its
// holder was paused, and another replica set it) fails Check, which
// guards the tag write, and its context ends; fences grow.
func TestRedisLeaseLost(t *testing.T) {
	addr, _ := startRedis(t)
	co, err := registryext.NewCoordinator(registryext.Coordination{Mode: registryext.CoordinationRedis, Redis: registryext.RedisCoordination{Addr: addr, Lease: time.Second}}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	ctx := context.Background()
	l, err := co.Lock(ctx, "repo:1.0.0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	if err := l.Check(ctx); err != nil {
		t.Fatalf("a lease held: %v", err)
	}
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	if err := rc.Set(ctx, "ociwf:lock:repo:1.0.0", "another replica", time.Second).Err(); err != nil {
		t.Fatal(err)
	}
	if err := l.Check(ctx); !errors.Is(err, errdef.ErrUnavailable) {
		t.Fatalf("Check of a lease taken over: %v, want ErrUnavailable", err)
	}
	<-l.Context().Done()
	if err := rc.Del(ctx, "ociwf:lock:repo:1.0.0").Err(); err != nil {
		t.Fatal(err)
	}
	l2, err := co.Lock(ctx, "repo:1.0.0", false)
	if err != nil {
		t.Fatal(err)
	}
	defer l2.Release()
	if l2.Fence() <= l.Fence() {
		t.Errorf("fence %d after %d, want it to grow", l2.Fence(), l.Fence())
	}
}

// Shared holders of a key keep an exclusive one out, and each other not;
// an exclusive holder keeps both out; a wait that runs out is
// ErrUnavailable; released, the key is free. Both modes for several
// replicas, and two coordinators stand for two replicas.
func TestCoordinatorSharedExclusive(t *testing.T) {
	for _, mode := range []string{registryext.CoordinationFilesystem, registryext.CoordinationRedis} {
		t.Run(mode, func(t *testing.T) {
			c := registryext.Coordination{Mode: mode, Wait: 300 * time.Millisecond, Dir: t.TempDir()}
			if mode == registryext.CoordinationRedis {
				addr, _ := startRedis(t)
				c.Redis = registryext.RedisCoordination{Addr: addr}
			}
			var cos []registryext.Coordinator
			for range 2 {
				co, err := registryext.NewCoordinator(c, "")
				if err != nil {
					t.Fatal(err)
				}
				defer co.Close()
				cos = append(cos, co)
			}
			ctx := context.Background()
			s1, err := cos[0].Lock(ctx, "repo", true)
			if err != nil {
				t.Fatal(err)
			}
			s2, err := cos[1].Lock(ctx, "repo", true)
			if err != nil {
				t.Fatalf("a second shared holder: %v", err)
			}
			if mode == registryext.CoordinationRedis {
				// flock waits without a bound; only Redis's wait runs out.
				if _, err := cos[1].Lock(ctx, "repo", false); !errors.Is(err, errdef.ErrUnavailable) {
					t.Fatalf("exclusive while shared is held: %v, want ErrUnavailable", err)
				}
			}
			s1.Release()
			s2.Release()
			x, err := cos[1].Lock(ctx, "repo", false)
			if err != nil {
				t.Fatalf("exclusive once free: %v", err)
			}
			got := make(chan error, 1)
			go func() {
				l, err := cos[0].Lock(ctx, "repo", true)
				if err == nil {
					l.Release()
				}
				got <- err
			}()
			x.Release()
			if err := <-got; err != nil && mode == registryext.CoordinationFilesystem {
				t.Fatalf("shared after the exclusive holder released: %v", err)
			}
		})
	}
}

// With Redis unreachable a lock is refused at once with ErrUnavailable.
func TestRedisDownRefuses(t *testing.T) {
	addr, cmd := startRedis(t)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	co, err := registryext.NewCoordinator(registryext.Coordination{Mode: registryext.CoordinationRedis, Redis: registryext.RedisCoordination{Addr: addr}}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer co.Close()
	if _, err := co.Lock(context.Background(), "repo:1.0.0", false); !errors.Is(err, errdef.ErrUnavailable) {
		t.Fatalf("lock with Redis down: %v, want ErrUnavailable", err)
	}
}

// ociwf.coordination is read from the configuration file, a relative
// lock directory against the file's; a bad mode, redis without an address
// and misspelt keys are errdef.ErrInvalid.
func TestCoordinationConfig(t *testing.T) {
	base := "version: 0.1\nstorage: {inmemory: {}}\nociwf:\n  coordination: "
	cfg, err := registryext.ParseConfig("/etc/ociwf/registry.yaml", []byte(base+`{mode: redis, wait: 5s, cacheTTL: 2s, redis: {addr: "r:6379", db: 2, lease: 4s}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Coordination
	if c.Mode != registryext.CoordinationRedis || c.Wait != 5*time.Second || c.CacheTTL != 2*time.Second || c.Redis.Addr != "r:6379" || c.Redis.DB != 2 || c.Redis.Lease != 4*time.Second {
		t.Fatalf("%+v", c)
	}
	cfg, err = registryext.ParseConfig("/etc/ociwf/registry.yaml", []byte(base+`{mode: filesystem, dir: locks}`))
	if err != nil || cfg.Coordination.Dir != "/etc/ociwf/locks" {
		t.Fatalf("%+v %v", cfg.Coordination, err)
	}
	cfg, err = registryext.ParseConfig("r.yaml", []byte("version: 0.1\nstorage: {inmemory: {}}\nredis: {addrs: [\"cache:6379\"], db: 3, password: pw}\nociwf: {coordination: {mode: redis}}\n"))
	if r := cfg.Coordination.Redis; err != nil || r.Addr != "cache:6379" || r.DB != 3 || r.Password != "pw" {
		t.Fatalf("redis from Distribution's section: %+v %v", r, err)
	}
	for _, bad := range []string{`{mode: zookeeper}`, `{mode: redis}`, `{mode: redis, redis: {addr: "r:1", lease: 10ms}}`, `{mode: filesystem, lease: 1s}`} {
		if _, err := registryext.ParseConfig("r.yaml", []byte(base+bad)); !errors.Is(err, errdef.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", bad, err)
		}
	}
	// Filesystem coordination needs a directory: the filesystem storage's
	// root or dir.
	if _, err := registryext.New(context.Background(), registryext.Config{Coordination: registryext.Coordination{Mode: registryext.CoordinationFilesystem}}); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("filesystem coordination on in-memory storage: %v", err)
	}
}
