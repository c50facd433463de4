package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"

	"ociwf.dev/ociwf/errdef"
)

// Head is the newest counted event of a version's chain as a verifier saw
// it. The zero Head is an empty chain.
type Head struct {
	Sequence int    `json:"sequence"`
	ID       string `json:"id"`
	State    State  `json:"state"`
}

// StateStore keeps, per version and set of trusted signers (the
// verifier's key: REPOSITORY@DIGEST#SIGNERS, so the same content in
// another repository, or under a policy trusting other keys, has its own
// chain), the highest chain a verifier has seen,
// so that a registry serving fewer events (rollback) or other events
// (a rewritten history) is noticed. Implementations must be safe for
// concurrent use.
type StateStore interface {
	// Load returns the head recorded under key; ok is false when none
	// is.
	Load(ctx context.Context, key string) (h Head, ok bool, err error)
	// Save records h under key unless a head with a higher sequence is
	// recorded already.
	Save(ctx context.Context, key string, h Head) error
}

// RollbackError is a chain shorter than, or different from, the one a
// verifier saw before. It matches errdef.ErrVerification.
type RollbackError struct {
	Workflow string
	Seen     Head
	Served   Head
	// Different is true when the chain served is as long but its event at
	// the seen position is another one: the history was rewritten.
	Different bool
}

func (e *RollbackError) Error() string {
	if e.Different {
		return fmt.Sprintf("lifecycle chain of %s differs from the one seen before: event %d was %s (%s), the registry serves %s; the registry or its storage rewrote history",
			e.Workflow, e.Seen.Sequence, e.Seen.ID, e.Seen.State, e.Served.ID)
	}
	served := "no events"
	if e.Served.Sequence > 0 {
		served = fmt.Sprintf("%d events (head %s, %s)", e.Served.Sequence, e.Served.ID, e.Served.State)
	}
	return fmt.Sprintf("lifecycle rollback of %s: %d events were seen (head %s, %s), the registry serves %s; events were removed from the registry",
		e.Workflow, e.Seen.Sequence, e.Seen.ID, e.Seen.State, served)
}

// Is makes a RollbackError match errdef.ErrVerification.
func (e *RollbackError) Is(target error) bool { return target == errdef.ErrVerification }

// CheckRollback compares the chain served with the head seen before: it
// fails when the chain is shorter, or when its event at the seen position
// is another one.
func CheckRollback(seen Head, served *Status) error {
	if seen.Sequence == 0 {
		return nil
	}
	h := served.Head()
	if h.Sequence < seen.Sequence {
		return &RollbackError{Workflow: served.Workflow, Seen: seen, Served: h}
	}
	// Evaluate numbers a chain's events from 1; a Status made otherwise
	// may not, so the seen position is looked up, not indexed.
	i := slices.IndexFunc(served.Chain, func(l Link) bool { return l.Event.Sequence == seen.Sequence })
	if i < 0 {
		return &RollbackError{Workflow: served.Workflow, Seen: seen, Served: h}
	}
	if at := served.Chain[i]; at.ID != seen.ID {
		return &RollbackError{Workflow: served.Workflow, Seen: seen, Served: Head{Sequence: seen.Sequence, ID: at.ID, State: at.Event.State}, Different: true}
	}
	return nil
}

// MemoryStore is a StateStore in memory, for a long-running process.
type MemoryStore struct {
	mu    sync.Mutex
	heads map[string]Head
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{heads: map[string]Head{}} }

// Load implements StateStore.
func (m *MemoryStore) Load(_ context.Context, workflow string) (Head, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	h, ok := m.heads[workflow]
	return h, ok, nil
}

// Save implements StateStore.
func (m *MemoryStore) Save(_ context.Context, workflow string, h Head) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if old, ok := m.heads[workflow]; !ok || h.Sequence > old.Sequence {
		m.heads[workflow] = h
	}
	return nil
}

// FileVersion is the format version of a FileStore's file.
const FileVersion = 1

// MaxStateFileBytes bounds a FileStore's file.
const MaxStateFileBytes = 64 << 20

// FileStore is a StateStore in a JSON file, shared by the processes of
// one user: every Save locks the file (flock on a sibling .lock file),
// merges what is there keeping the higher head, and replaces it
// atomically.
type FileStore struct {
	path string
	mu   sync.Mutex
}

type stateFile struct {
	Version   int             `json:"version"`
	Workflows map[string]Head `json:"workflows"`
}

// NewFileStore returns a FileStore at path; the file and its directory
// are created on the first Save.
func NewFileStore(path string) *FileStore { return &FileStore{path: path} }

// Path returns the file's path.
func (f *FileStore) Path() string { return f.path }

// DefaultStatePath returns where the CLI keeps its FileStore:
// $XDG_STATE_HOME/ociwf/lifecycle.json, or ~/.local/state/ociwf/lifecycle.json.
func DefaultStatePath() (string, error) {
	dir := os.Getenv("XDG_STATE_HOME")
	if dir == "" || !filepath.IsAbs(dir) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("lifecycle state directory: %w", err)
		}
		dir = filepath.Join(home, ".local", "state")
	}
	return filepath.Join(dir, "ociwf", "lifecycle.json"), nil
}

// Load implements StateStore.
func (f *FileStore) Load(_ context.Context, workflow string) (Head, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, err := f.read()
	if err != nil {
		return Head{}, false, err
	}
	h, ok := s.Workflows[workflow]
	return h, ok, nil
}

// Save implements StateStore.
func (f *FileStore) Save(_ context.Context, workflow string, h Head) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(f.path), 0o700); err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	lock, err := os.OpenFile(f.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lifecycle state: lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing unlocks too
	s, err := f.read()
	if err != nil {
		return err
	}
	if old, ok := s.Workflows[workflow]; ok && old.Sequence >= h.Sequence {
		return nil
	}
	s.Workflows[workflow] = h
	raw, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".lifecycle-*.json")
	if err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("lifecycle state: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("lifecycle state: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.path); err != nil {
		return fmt.Errorf("lifecycle state: %w", err)
	}
	return nil
}

// read reads the file; a missing file is an empty store.
func (f *FileStore) read() (*stateFile, error) {
	s := &stateFile{Version: FileVersion, Workflows: map[string]Head{}}
	file, err := os.Open(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("lifecycle state: %w", err)
	}
	defer file.Close()
	raw, err := io.ReadAll(io.LimitReader(file, MaxStateFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("lifecycle state %s: %w", f.path, err)
	}
	if len(raw) > MaxStateFileBytes {
		return nil, fmt.Errorf("lifecycle state %s: larger than %d bytes: %w", f.path, MaxStateFileBytes, errdef.ErrTooLarge)
	}
	if err := json.Unmarshal(raw, s); err != nil {
		return nil, fmt.Errorf("lifecycle state %s: %v (move the file away to start afresh, losing rollback protection for what it recorded): %w", f.path, err, errdef.ErrInvalid)
	}
	if s.Version != FileVersion {
		return nil, fmt.Errorf("lifecycle state %s: version %d, want %d: %w", f.path, s.Version, FileVersion, errdef.ErrInvalid)
	}
	if s.Workflows == nil {
		s.Workflows = map[string]Head{}
	}
	return s, nil
}
