package registryext

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// ErrRootInUse is a registry (or gc) refused a filesystem root that
// another process serves in a way that breaks the guarantees: a replica
// in coordination mode inprocess beside others, or gc while a registry
// serves the root.
var ErrRootInUse = errors.New("registry root in use")

// rootLock is a flock(2) on <root>/ociwf/serving.lock that every process
// serving a filesystem root holds while it runs: shared by replicas that
// coordinate across processes (filesystem, redis), exclusive by one in
// coordination mode inprocess (its locks order nobody else's writes) and
// by gc (which needs storage nobody writes). The kernel drops it when the
// process ends, kill -9 included.
type rootLock struct{ fd *os.File }

// lockRoot takes root's serving lock without waiting; what says who
// asks, for the error.
func lockRoot(root string, exclusive bool, what string) (*rootLock, error) {
	dir := filepath.Join(root, "ociwf")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	path := filepath.Join(dir, "serving.lock")
	fd, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(fd.Fd()), how|syscall.LOCK_NB)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		fd.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", what, ErrRootInUse)
		}
		return nil, fmt.Errorf("%s: flock %s: %w", what, path, err)
	}
	return &rootLock{fd: fd}, nil
}

// serveRoot takes root's serving lock for a registry in coordination
// mode: exclusive for inprocess, shared otherwise.
func serveRoot(root, mode string) (*rootLock, error) {
	if mode == "" || mode == CoordinationInProcess {
		l, err := lockRoot(root, true, "registry")
		if errors.Is(err, ErrRootInUse) {
			return nil, fmt.Errorf("registry: another process serves %s: replicas on one storage need --coordination filesystem (or redis) in every one of them; stop the other registry or restart every replica with it: %w", root, ErrRootInUse)
		}
		return l, err
	}
	l, err := lockRoot(root, false, "registry")
	if errors.Is(err, ErrRootInUse) {
		return nil, fmt.Errorf("registry: a registry in coordination mode %s (or a gc) has %s to itself: restart it with --coordination %s like this replica, or wait for the gc: %w", CoordinationInProcess, root, mode, ErrRootInUse)
	}
	return l, err
}

// Release drops the lock; safe on nil and more than once.
func (l *rootLock) Release() {
	if l == nil || l.fd == nil {
		return
	}
	_ = syscall.Flock(int(l.fd.Fd()), syscall.LOCK_UN)
	_ = l.fd.Close()
	l.fd = nil
}

// rootHolder is a coordinator that also holds the root's serving lock,
// dropped on Close.
type rootHolder struct {
	Coordinator
	root *rootLock
}

func (h *rootHolder) Close() error {
	defer h.root.Release()
	return h.Coordinator.Close()
}
