package lifecycle_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// statusOf is the status of a chain of n events: published, deprecated,
// retired, archived.
func statusOf(t *testing.T, n int) *lifecycle.Status {
	t.Helper()
	c := newChain(t)
	for _, s := range []lifecycle.State{lifecycle.Published, lifecycle.Deprecated, lifecycle.Retired, lifecycle.Archived}[:n] {
		c.next(s, "alice")
	}
	return c.evaluate(open())
}

func TestCheckRollback(t *testing.T) {
	three := statusOf(t, 3)
	seen := three.Head()
	if err := lifecycle.CheckRollback(lifecycle.Head{}, statusOf(t, 0)); err != nil {
		t.Fatalf("nothing seen: %v", err)
	}
	if err := lifecycle.CheckRollback(seen, three); err != nil {
		t.Fatalf("same chain: %v", err)
	}
	if err := lifecycle.CheckRollback(seen, statusOf(t, 4)); err != nil {
		t.Fatalf("longer chain: %v", err)
	}
	for _, n := range []int{0, 2} {
		err := lifecycle.CheckRollback(seen, statusOf(t, n))
		var rb *lifecycle.RollbackError
		if !errors.As(err, &rb) || rb.Different || !errors.Is(err, errdef.ErrVerification) || rb.Seen != seen || rb.Served.Sequence != n {
			t.Fatalf("%d events served after 3 were seen: %v", n, err)
		}
		if !strings.Contains(err.Error(), "3 events were seen (head "+seen.ID+", retired)") {
			t.Fatalf("message %q", err)
		}
		t.Log(err)
	}
	// As long, but another third event: the history was rewritten.
	c := newChain(t)
	c.next(lifecycle.Published, "alice")
	c.next(lifecycle.Deprecated, "alice")
	rewritten := c.next(lifecycle.Retired, "alice")
	// The same state with another reason is another event.
	rewritten.Value.Reason = "rewritten"
	rewritten = c.sign(rewritten.Value, "alice")
	c.events[2], c.head = rewritten, &rewritten
	for _, served := range []*lifecycle.Status{c.evaluate(open()), func() *lifecycle.Status { c.next(lifecycle.Archived, "alice"); return c.evaluate(open()) }()} {
		err := lifecycle.CheckRollback(seen, served)
		var rb *lifecycle.RollbackError
		if !errors.As(err, &rb) || !rb.Different || rb.Served.ID != rewritten.ID || rb.Served.Sequence != 3 {
			t.Fatalf("rewritten history (%d events): %v", len(served.Chain), err)
		}
		if !strings.Contains(err.Error(), "rewrote history") {
			t.Fatalf("message %q", err)
		}
	}
}

// CheckRollback takes any Status: one not made by Evaluate, whose chain
// does not number its events from 1, is an error, not a panic.
func TestCheckRollbackOnAHandMadeStatus(t *testing.T) {
	full := statusOf(t, 3)
	odd := &lifecycle.Status{Workflow: wf, Chain: full.Chain[2:]} // one link, sequence 3
	err := lifecycle.CheckRollback(lifecycle.Head{Sequence: 2, ID: full.Chain[1].ID}, odd)
	var rb *lifecycle.RollbackError
	if !errors.As(err, &rb) {
		t.Fatalf("a chain without its second event: %v", err)
	}
	if err := lifecycle.CheckRollback(full.Head(), odd); err != nil {
		t.Fatalf("its head is the one seen: %v", err)
	}
}

// stores returns a fresh store of each kind.
func stores(t *testing.T) map[string]lifecycle.StateStore {
	return map[string]lifecycle.StateStore{
		"memory": lifecycle.NewMemoryStore(),
		"file":   lifecycle.NewFileStore(filepath.Join(t.TempDir(), "sub", "dir", "state.json")),
	}
}

func TestStoreKeepsTheHighestHead(t *testing.T) {
	ctx := context.Background()
	for name, s := range stores(t) {
		t.Run(name, func(t *testing.T) {
			if _, ok, err := s.Load(ctx, wf); ok || err != nil {
				t.Fatalf("empty store: %v %v", ok, err)
			}
			h2 := lifecycle.Head{Sequence: 2, ID: other, State: lifecycle.Deprecated}
			for _, h := range []lifecycle.Head{{Sequence: 1, ID: wf, State: lifecycle.Published}, h2, {Sequence: 1, ID: wf, State: lifecycle.Published}, {Sequence: 2, ID: wf, State: lifecycle.Retired}} {
				if err := s.Save(ctx, wf, h); err != nil {
					t.Fatal(err)
				}
			}
			if got, ok, err := s.Load(ctx, wf); !ok || err != nil || got != h2 {
				t.Fatalf("got %+v %v %v, want %+v", got, ok, err, h2)
			}
			if _, ok, _ := s.Load(ctx, other); ok {
				t.Fatal("another workflow has a head")
			}
		})
	}
}

// Concurrent savers, in one process through one or several FileStore
// values on one file, keep the highest head of every workflow.
func TestFileStoreConcurrentSaves(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "lifecycle.json")
	a, b := lifecycle.NewFileStore(path), lifecycle.NewFileStore(path)
	const workflows, writers, heads = 4, 8, 12
	wfName := func(i int) string { return fmt.Sprintf("sha256:%064x", i) }
	var wg sync.WaitGroup
	errs := make(chan error, writers*workflows*heads)
	for w := 0; w < writers; w++ {
		s := a
		if w%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < workflows; i++ {
				for n := 1; n <= heads; n++ {
					seq := (n*7+w*5)%heads + 1 // every writer saves every sequence, in its own order
					if err := s.Save(ctx, wfName(i), lifecycle.Head{Sequence: seq, ID: wfName(seq), State: lifecycle.Published}); err != nil {
						errs <- err
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	fresh := lifecycle.NewFileStore(path)
	for i := 0; i < workflows; i++ {
		h, ok, err := fresh.Load(ctx, wfName(i))
		if err != nil || !ok || h.Sequence != heads || h.ID != wfName(heads) {
			t.Fatalf("workflow %d: %+v %v %v, want sequence %d", i, h, ok, err, heads)
		}
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".lifecycle-*"))
	if len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
}

func TestFileStoreCorruptFile(t *testing.T) {
	ctx := context.Background()
	for name, content := range map[string]string{
		"not JSON":      `{"version":1,"workflows":`,
		"other version": `{"version":2,"workflows":{}}`,
		"wrong types":   `{"version":1,"workflows":{"x":{"sequence":"one"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "lifecycle.json")
			if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			s := lifecycle.NewFileStore(path)
			_, _, lerr := s.Load(ctx, wf)
			serr := s.Save(ctx, wf, lifecycle.Head{Sequence: 1, ID: wf, State: lifecycle.Published})
			for _, err := range []error{lerr, serr} {
				if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), path) {
					t.Fatalf("err = %v, want an invalid-input error naming %s", err, path)
				}
			}
			if got, _ := os.ReadFile(path); string(got) != content {
				t.Fatal("a failed Save changed the file")
			}
			t.Log(lerr)
		})
	}
	// A file that cannot be read names itself too.
	dir := filepath.Join(t.TempDir(), "lifecycle.json")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if _, _, err := lifecycle.NewFileStore(dir).Load(ctx, wf); err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("a directory: %v", err)
	}
}

func TestFileStoreFileMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state", "lifecycle.json")
	s := lifecycle.NewFileStore(path)
	if s.Path() != path {
		t.Fatal(s.Path())
	}
	if err := s.Save(context.Background(), wf, lifecycle.Head{Sequence: 1, ID: wf, State: lifecycle.Published}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 != 0 {
		t.Fatalf("file mode %v, %v: others may read or write the state", fi.Mode(), err)
	}
	raw, _ := os.ReadFile(path)
	if !strings.Contains(string(raw), `"version": 1`) || !strings.Contains(string(raw), wf) {
		t.Fatalf("file %s", raw)
	}
}

func TestDefaultStatePath(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	for xdg, want := range map[string]string{
		"":                  filepath.Join(home, ".local", "state", "ociwf", "lifecycle.json"),
		"relative/state":    filepath.Join(home, ".local", "state", "ociwf", "lifecycle.json"),
		"/var/lib/me/state": "/var/lib/me/state/ociwf/lifecycle.json",
	} {
		t.Setenv("XDG_STATE_HOME", xdg)
		got, err := lifecycle.DefaultStatePath()
		if err != nil || got != want {
			t.Errorf("XDG_STATE_HOME=%q: %s %v, want %s", xdg, got, err, want)
		}
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "")
	if _, err := lifecycle.DefaultStatePath(); err == nil {
		t.Error("no home and no XDG_STATE_HOME: no error")
	}
}
