package registryext

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"ociwf.dev/ociwf/errdef"
)

// DefaultRedisLease is how long a Redis lease lasts without renewal: a
// replica killed while holding a lock leaves its key locked this long.
const DefaultRedisLease = 10 * time.Second

// minRedisLease is the shortest lease accepted: renewals go out every
// third of it.
const minRedisLease = 300 * time.Millisecond

// redisTimeout bounds each call to Redis.
const redisTimeout = 2 * time.Second

// RedisCoordination configures CoordinationRedis.
type RedisCoordination struct {
	// Addr is Redis's host:port.
	Addr string
	// Username and Password authenticate (ACL or requirepass); both may
	// be empty.
	Username, Password string
	// DB is the database number.
	DB int
	// Lease is how long a lock's key lives without renewal
	// (DefaultRedisLease); the holder renews it every third of it.
	Lease time.Duration
	// Prefix starts every key the registry writes; empty means "ociwf:".
	Prefix string
}

// Keys per coordination key k: <prefix>lock:<k> holds the exclusive
// holder's token, <prefix>shared:<k> is a sorted set of the shared
// holders' tokens scored by when each expires (Redis server time, ms);
// <prefix>fence counts every lease handed out, for fencing tokens.
//
// acquire takes KEYS (lock, shared, fence) and ARGV (token, lease ms,
// "1" for shared) and returns the fence, or 0 when the key is held in a
// conflicting way.
var acquireScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local lease = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
if ARGV[3] == '1' then
  local f = redis.call('INCR', KEYS[3])
  redis.call('ZADD', KEYS[2], now + lease, ARGV[1])
  if redis.call('PTTL', KEYS[2]) < lease then redis.call('PEXPIRE', KEYS[2], lease) end
  return f
end
if redis.call('ZCARD', KEYS[2]) > 0 then return 0 end
local f = redis.call('INCR', KEYS[3])
redis.call('SET', KEYS[1], ARGV[1], 'PX', lease)
return f
`)

// renew extends a lease held (KEYS lock, shared; ARGV token, lease ms,
// shared) and returns 1, or 0 when it is no longer held.
var renewScript = redis.NewScript(`
local lease = tonumber(ARGV[2])
if ARGV[3] == '1' then
  if not redis.call('ZSCORE', KEYS[2], ARGV[1]) then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  redis.call('ZADD', KEYS[2], 'XX', now + lease, ARGV[1])
  if redis.call('PTTL', KEYS[2]) < lease then redis.call('PEXPIRE', KEYS[2], lease) end
  return 1
end
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], lease)
return 1
`)

// release deletes a lease held, and only that one (KEYS lock, shared;
// ARGV token, shared).
var releaseScript = redis.NewScript(`
if ARGV[2] == '1' then return redis.call('ZREM', KEYS[2], ARGV[1]) end
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`)

// redisLocks is CoordinationRedis.
type redisLocks struct {
	c      *redis.Client
	lease  time.Duration
	wait   time.Duration
	prefix string
}

func newRedisLocks(c RedisCoordination, wait time.Duration) (*redisLocks, error) {
	if c.Addr == "" {
		return nil, fmt.Errorf("coordination redis: no address: set ociwf.coordination.redis.addr (host:port): %w", errdef.ErrInvalid)
	}
	lease := c.Lease
	if lease == 0 {
		lease = DefaultRedisLease
	}
	if lease < minRedisLease {
		return nil, fmt.Errorf("coordination redis: lease %s is under %s: %w", lease, minRedisLease, errdef.ErrInvalid)
	}
	prefix := c.Prefix
	if prefix == "" {
		prefix = "ociwf:"
	}
	client := redis.NewClient(&redis.Options{
		Addr: c.Addr, Username: c.Username, Password: c.Password, DB: c.DB,
		DialTimeout: redisTimeout, ReadTimeout: redisTimeout, WriteTimeout: redisTimeout,
		// A call that fails fails the write (closed): no retries that
		// would outlast the lease.
		MaxRetries: -1,
	})
	return &redisLocks{c: client, lease: lease, wait: wait, prefix: prefix}, nil
}

func (r *redisLocks) Close() error { return r.c.Close() }

func (r *redisLocks) keys(key string) []string {
	return []string{r.prefix + "lock:" + key, r.prefix + "shared:" + key, r.prefix + "fence"}
}

func flag(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func unavailable(op, key string, err error) error {
	return fmt.Errorf("coordination redis: %s %s: %v; protected writes fail until Redis answers: %w", op, key, err, errdef.ErrUnavailable)
}

func (r *redisLocks) Lock(ctx context.Context, key string, shared bool) (Lease, error) {
	keys := r.keys(key)
	token := randomToken()
	ms := strconv.FormatInt(r.lease.Milliseconds(), 10)
	deadline := time.Now().Add(r.wait)
	pause := time.Millisecond
	for {
		sent := time.Now()
		cctx, cancel := context.WithTimeout(ctx, redisTimeout)
		fence, err := acquireScript.Run(cctx, r.c, keys, token, ms, flag(shared)).Int64()
		cancel()
		if err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("coordination redis: lock %s: %w", key, ctx.Err())
			}
			return nil, unavailable("lock", key, err)
		}
		if fence > 0 {
			return r.start(ctx, key, keys, token, shared, uint64(fence), sent), nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("coordination redis: %s stayed locked for %s (another replica's request, or one that died holding it: its lease of %s ends it); try again: %w", key, r.wait, r.lease, errdef.ErrUnavailable)
		}
		// Redis has no wait for a key to go: poll, backing off to
		// 50ms, with jitter so racers spread out.
		t := time.NewTimer(pause + rand.N(pause))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("coordination redis: lock %s: %w", key, ctx.Err())
		case <-t.C:
		}
		pause = min(2*pause, 50*time.Millisecond)
	}
}

// redisLease is a lease held in Redis and renewed while held.
type redisLease struct {
	r      *redisLocks
	key    string
	keys   []string
	token  string
	shared bool
	fence  uint64
	ctx    context.Context
	cancel context.CancelFunc
	// until is when the lease ends at the latest unless renewed, in
	// local monotonic nanoseconds since base: a renewal sent at t keeps
	// it until t+lease.
	base  time.Time
	until atomic.Int64
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
}

func (r *redisLocks) start(ctx context.Context, key string, keys []string, token string, shared bool, fence uint64, sent time.Time) *redisLease {
	c, cancel := context.WithCancel(ctx)
	l := &redisLease{r: r, key: key, keys: keys, token: token, shared: shared, fence: fence, ctx: c, cancel: cancel,
		base: sent, stop: make(chan struct{}), done: make(chan struct{})}
	l.until.Store(int64(r.lease))
	go l.renew()
	return l
}

func (l *redisLease) Context() context.Context { return l.ctx }
func (l *redisLease) Fence() uint64            { return l.fence }

// extend renews the lease once and reports whether it still holds.
func (l *redisLease) extend(ctx context.Context) (bool, error) {
	sent := time.Since(l.base)
	cctx, cancel := context.WithTimeout(ctx, redisTimeout)
	defer cancel()
	ok, err := renewScript.Run(cctx, l.r.c, l.keys, l.token, strconv.FormatInt(l.r.lease.Milliseconds(), 10), flag(l.shared)).Int64()
	if err != nil {
		return false, err
	}
	if ok != 1 {
		return false, nil
	}
	l.until.Store(int64(sent + l.r.lease))
	return true, nil
}

// left is how long the lease holds for sure.
func (l *redisLease) left() time.Duration {
	return time.Duration(l.until.Load()) - time.Since(l.base)
}

func (l *redisLease) renew() {
	defer close(l.done)
	t := time.NewTicker(l.r.lease / 3)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-t.C:
		}
		ok, err := l.extend(context.Background())
		if ok {
			continue
		}
		if err == nil || l.left() <= 0 {
			// Lost: another holder may have it now. Whatever the
			// holder does under it is cancelled, and Check fails.
			l.cancel()
			return
		}
	}
}

// Check renews the lease and requires at least half a lease left, so
// the write it guards has that long before anyone else can take the key.
func (l *redisLease) Check(ctx context.Context) error {
	if err := l.ctx.Err(); err != nil {
		return fmt.Errorf("coordination redis: the lease on %s was lost; nothing was written: %w", l.key, errdef.ErrUnavailable)
	}
	ok, err := l.extend(ctx)
	switch {
	case err != nil:
		return unavailable("renew the lease on", l.key, err)
	case !ok:
		l.cancel()
		return fmt.Errorf("coordination redis: the lease on %s (fence %d) expired and may be another's; nothing was written: %w", l.key, l.fence, errdef.ErrUnavailable)
	case l.left() < l.r.lease/2:
		return fmt.Errorf("coordination redis: renewing the lease on %s took over half its %s; nothing was written: %w", l.key, l.r.lease, errdef.ErrUnavailable)
	}
	return nil
}

func (l *redisLease) Release() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), redisTimeout)
		defer cancel()
		// On failure the key lapses with its lease.
		_ = releaseScript.Run(ctx, l.r.c, l.keys, l.token, flag(l.shared)).Err()
	})
}
