package registryext

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"ociwf.dev/ociwf/errdef"
)

// Coordination modes (Coordination.Mode).
const (
	// CoordinationInProcess keeps the locks in the server process: the
	// guarantees hold for one replica per storage.
	CoordinationInProcess = "inprocess"
	// CoordinationFilesystem adds flock(2) locks on files in a directory
	// every replica sees (by default under the filesystem storage's root):
	// replicas on one host, or on a filesystem whose flock works across
	// hosts.
	CoordinationFilesystem = "filesystem"
	// CoordinationRedis adds leases in Redis (SET NX PX, renewed while
	// held, released by compare-and-delete, fenced): replicas anywhere.
	CoordinationRedis = "redis"
)

// DefaultLockWait bounds how long a protected write waits for a lock
// another request (of any replica) holds before it fails with 503.
const DefaultLockWait = 30 * time.Second

// DefaultReplicaCacheTTL bounds how long a replica serves a cached
// lifecycle state after another replica changed it, in the coordination
// modes for several replicas (filesystem, redis).
const DefaultReplicaCacheTTL = 5 * time.Second

// Coordination chooses how the registry orders protected writes: the
// check-store-tag of a protected tag, the append to an append-only tag,
// and a repository's deletes against its protected writes. Replicas that
// serve one storage must share one coordination mode (not inprocess) and
// its settings; a configuration file's ociwf.coordination section sets it.
type Coordination struct {
	// Mode is CoordinationInProcess (the default), CoordinationFilesystem
	// or CoordinationRedis.
	Mode string
	// Dir is the lock directory of CoordinationFilesystem; empty means
	// <rootdirectory>/ociwf/locks of the filesystem storage.
	Dir string
	// Redis configures CoordinationRedis.
	Redis RedisCoordination
	// Wait bounds each wait for a lock (DefaultLockWait); past it the
	// write fails with 503 UNAVAILABLE.
	Wait time.Duration
	// CacheTTL bounds how stale another replica's writes leave this
	// replica's cached lifecycle states (DefaultReplicaCacheTTL in the
	// modes for several replicas; in CoordinationInProcess a cached state
	// lives until this process invalidates it). Negative turns the bound
	// off.
	CacheTTL time.Duration
}

// Coordinator hands out the locks protected writes hold. Keys are
// "repository:tag" for a tag, taken exclusive, and "repository" for a
// repository, taken shared by protected writes and exclusive by deletes.
// A request takes at most one repository key and then one tag key, in
// that order, so no two requests wait on each other in a cycle.
type Coordinator interface {
	// Lock takes key, shared or exclusive, waiting while others hold it
	// in a conflicting way. An error (wrapping errdef.ErrUnavailable when
	// the coordination service cannot be used or the wait ran out) means
	// nothing is held.
	Lock(ctx context.Context, key string, shared bool) (Lease, error)
	// Close releases what the coordinator holds itself (connections).
	Close() error
}

// Lease is a lock held.
type Lease interface {
	// Context is derived from the context Lock was given and is cancelled
	// when the lease is lost (a Redis lease that could not be renewed) or
	// released.
	Context() context.Context
	// Check reports, before a write the lock guards, whether the lease
	// still holds with time to spare; an error wraps
	// errdef.ErrUnavailable and the write must not happen.
	Check(ctx context.Context) error
	// Fence is the lease's fencing token: it grows with every lease of
	// the key handed out (zero where the mode has none).
	Fence() uint64
	// Release gives the lock up; it is safe to call more than once.
	Release()
}

// tagKey and repoKey are the coordination keys of a tag and of a
// repository. A repository name holds no ':' (reference.NameRegexp), so
// the two never meet.
func tagKey(repo, tag string) string { return repo + ":" + tag }
func repoKey(repo string) string     { return repo }

// NewCoordinator builds the coordinator c configures, as New does; root
// is the filesystem storage's root directory ("" for other storage). A
// Redis coordinator connects on first use.
func NewCoordinator(c Coordination, root string) (Coordinator, error) {
	wait := c.Wait
	if wait <= 0 {
		wait = DefaultLockWait
	}
	switch c.Mode {
	case "", CoordinationInProcess:
		return &localLocks{}, nil
	case CoordinationFilesystem:
		dir := c.Dir
		if dir == "" {
			if root == "" {
				return nil, fmt.Errorf("coordination %s: no lock directory: set ociwf.coordination.dir, or use filesystem storage, whose root holds the locks: %w", c.Mode, errdef.ErrInvalid)
			}
			dir = filepath.Join(root, "ociwf", "locks")
		}
		for _, sub := range []string{"tags", "repositories"} {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return nil, fmt.Errorf("coordination %s: lock directory: %w", c.Mode, err)
			}
		}
		return &fileLocks{dir: dir}, nil
	case CoordinationRedis:
		return newRedisLocks(c.Redis, wait)
	}
	return nil, fmt.Errorf("coordination: unknown mode %q; modes are %s, %s and %s: %w", c.Mode, CoordinationInProcess, CoordinationFilesystem, CoordinationRedis, errdef.ErrInvalid)
}

// validate checks c without connecting anywhere.
func (c Coordination) validate() error {
	switch c.Mode {
	case "", CoordinationInProcess, CoordinationFilesystem:
	case CoordinationRedis:
		if c.Redis.Addr == "" {
			return fmt.Errorf("mode redis needs redis.addr (host:port), or one address in Distribution's redis.addrs: %w", errdef.ErrInvalid)
		}
		if c.Redis.Lease != 0 && c.Redis.Lease < minRedisLease {
			return fmt.Errorf("redis.lease %s is under %s: %w", c.Redis.Lease, minRedisLease, errdef.ErrInvalid)
		}
	default:
		return fmt.Errorf("unknown mode %q; modes are %s, %s and %s: %w", c.Mode, CoordinationInProcess, CoordinationFilesystem, CoordinationRedis, errdef.ErrInvalid)
	}
	if c.Wait < 0 {
		return fmt.Errorf("wait %s is negative: %w", c.Wait, errdef.ErrInvalid)
	}
	return nil
}

// cacheTTL is how long cached lifecycle states live under c.
func (c Coordination) cacheTTL() time.Duration {
	switch {
	case c.CacheTTL < 0:
		return 0
	case c.CacheTTL > 0:
		return c.CacheTTL
	case c.Mode == CoordinationFilesystem || c.Mode == CoordinationRedis:
		return DefaultReplicaCacheTTL
	}
	return 0
}

// localLocks is CoordinationInProcess: one read-write lock per key,
// existing only while someone holds or waits for it, so memory is bounded
// by the requests in flight.
type localLocks struct {
	mu    sync.Mutex
	locks map[string]*localLock
}

type localLock struct {
	sync.RWMutex
	refs int // holders and waiters
}

func (l *localLocks) take(key string, shared bool) func() {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*localLock{}
	}
	x := l.locks[key]
	if x == nil {
		x = &localLock{}
		l.locks[key] = x
	}
	x.refs++
	l.mu.Unlock()
	if shared {
		x.RLock()
	} else {
		x.Lock()
	}
	return func() {
		if shared {
			x.RUnlock()
		} else {
			x.Unlock()
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if x.refs--; x.refs == 0 {
			delete(l.locks, key)
		}
	}
}

func (l *localLocks) Lock(ctx context.Context, key string, shared bool) (Lease, error) {
	return newHeldLease(ctx, l.take(key, shared)), nil
}

func (l *localLocks) Close() error { return nil }

// heldLease is a lease that cannot be lost while the process lives: an
// in-process lock or an flock(2) lock.
type heldLease struct {
	ctx     context.Context
	cancel  context.CancelFunc
	once    sync.Once
	release func()
}

func newHeldLease(ctx context.Context, release func()) *heldLease {
	c, cancel := context.WithCancel(ctx)
	return &heldLease{ctx: c, cancel: cancel, release: release}
}

func (h *heldLease) Context() context.Context    { return h.ctx }
func (h *heldLease) Check(context.Context) error { return nil }
func (h *heldLease) Fence() uint64               { return 0 }
func (h *heldLease) Release() {
	h.once.Do(func() {
		h.cancel()
		h.release()
	})
}

// Lock files of CoordinationFilesystem: keys hash to a fixed set of files
// per kind, so the directory stays small however many tags there are; two
// keys sharing a file only wait on each other.
const (
	tagLockFiles  = 4096
	repoLockFiles = 1024
)

// fileLocks is CoordinationFilesystem: an in-process lock per key (one
// waiter per key per process reaches the kernel) and then flock(2) on the
// key's lock file, which the kernel releases when the process dies,
// kill -9 included.
type fileLocks struct {
	local localLocks
	dir   string
}

// file returns the lock file of key.
func (f *fileLocks) file(key string, repo bool) string {
	sum := sha256.Sum256([]byte(key))
	kind, n := "tags", uint32(tagLockFiles)
	if repo {
		kind, n = "repositories", repoLockFiles
	}
	b := uint32(sum[0])<<24 | uint32(sum[1])<<16 | uint32(sum[2])<<8 | uint32(sum[3])
	return filepath.Join(f.dir, kind, fmt.Sprintf("%04x.lock", b%n))
}

func (f *fileLocks) Lock(ctx context.Context, key string, shared bool) (Lease, error) {
	unlock := f.local.take(key, shared)
	// A repository key holds no ':'; a tag key does.
	path := f.file(key, !strings.ContainsRune(key, ':'))
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("coordination filesystem: lock file for %s: %v: %w", key, err, errdef.ErrUnavailable)
	}
	how := syscall.LOCK_EX
	if shared {
		how = syscall.LOCK_SH
	}
	for {
		err = syscall.Flock(int(fd.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fd.Close()
		unlock()
		return nil, fmt.Errorf("coordination filesystem: flock %s for %s: %v: %w", path, key, err, errdef.ErrUnavailable)
	}
	return newHeldLease(ctx, func() {
		_ = syscall.Flock(int(fd.Fd()), syscall.LOCK_UN)
		fd.Close()
		unlock()
	}), nil
}

func (f *fileLocks) Close() error { return nil }

// randomToken returns 16 random bytes in hex.
func randomToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return hex.EncodeToString(b)
}
