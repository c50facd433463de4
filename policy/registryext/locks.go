package registryext

import "sync"

// repoLocks hands out one read-write lock per repository: protected
// writes (a PUT to a protected tag, a manifest with a subject) hold their
// repository's shared, a delete holds it exclusive, so a delete's
// protection check and the delete itself see no protected write of that
// repository in between, and writes to other repositories go on. A lock
// exists only while someone holds or waits for it, so memory is bounded
// by the requests in flight, not by the repositories stored.
type repoLocks struct {
	mu    sync.Mutex
	locks map[string]*repoLock
}

type repoLock struct {
	sync.RWMutex
	refs int // holders and waiters
}

func (l *repoLocks) acquire(repo string) *repoLock {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.locks == nil {
		l.locks = map[string]*repoLock{}
	}
	x := l.locks[repo]
	if x == nil {
		x = &repoLock{}
		l.locks[repo] = x
	}
	x.refs++
	return x
}

func (l *repoLocks) release(repo string, x *repoLock) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if x.refs--; x.refs == 0 {
		delete(l.locks, repo)
	}
}

// shared takes repo's lock shared and returns its release.
func (l *repoLocks) shared(repo string) func() {
	x := l.acquire(repo)
	x.RLock()
	return func() {
		x.RUnlock()
		l.release(repo, x)
	}
}

// exclusive takes repo's lock exclusive and returns its release.
func (l *repoLocks) exclusive(repo string) func() {
	x := l.acquire(repo)
	x.Lock()
	return func() {
		x.Unlock()
		l.release(repo, x)
	}
}
