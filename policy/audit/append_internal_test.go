package audit

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// halfWriter writes half of the next line it is given, then fails, as a
// full disk does; truncErr, if set, makes the truncate after it fail too.
type halfWriter struct {
	*os.File
	fail     bool
	truncErr error
}

var errDiskFull = errors.New("no space left on device")

func (w *halfWriter) Write(b []byte) (int, error) {
	if !w.fail {
		return w.File.Write(b)
	}
	w.fail = false
	n, _ := w.File.Write(b[:len(b)/2])
	return n, errDiskFull
}

func (w *halfWriter) Truncate(size int64) error {
	if w.truncErr != nil {
		return w.truncErr
	}
	return w.File.Truncate(size)
}

func TestAppendPartialWrite(t *testing.T) {
	for _, tc := range []struct {
		name     string
		truncErr error
		want     int // entries in the log afterwards
	}{
		{"the partial line is removed", nil, 2},
		{"no more entries once it cannot be", errors.New("read-only file system"), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.jsonl")
			l, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.Append(Entry{Actor: "a", Operation: "manifest-put", Outcome: OK}); err != nil {
				t.Fatal(err)
			}
			w := &halfWriter{File: l.f.(*os.File), fail: true, truncErr: tc.truncErr}
			l.f = w
			if err := l.Append(Entry{Actor: "b", Operation: "manifest-put", Outcome: OK}); !errors.Is(err, errDiskFull) {
				t.Fatalf("append on a full disk: %v, want the write's error", err)
			}
			err = l.Append(Entry{Actor: "c", Operation: "blob-upload", Outcome: OK})
			if tc.truncErr == nil && err != nil {
				t.Fatalf("append after a removed partial line: %v", err)
			}
			if tc.truncErr != nil && err == nil {
				t.Fatal("append after a partial line that could not be removed succeeded")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			if tc.truncErr != nil {
				// What a restart after the disk is fixed finds: one
				// break, at the partial line, which Open refuses.
				if _, err := Open(path); err == nil {
					t.Fatal("Open accepted a log ending in a partial line")
				}
				return
			}
			f, err := os.Open(path)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			rep, err := Verify(f)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Broken != nil || rep.Entries != tc.want {
				t.Fatalf("log after a partial write: %d entries, broken %+v; want %d entries, intact", rep.Entries, rep.Broken, tc.want)
			}
		})
	}
}
