// Package audit keeps the registry's audit log: one JSON object per line,
// each entry carrying the hash of the entry before it, so that editing,
// removing or reordering any line breaks the chain from there on. Verify
// walks a log and names the first broken link; entries with outcome
// "denied" are the policy violations.
package audit

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Genesis is the previous-entry hash of the first entry.
const Genesis = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Outcomes.
const (
	OK     = "ok"
	Denied = "denied"
	Failed = "failed"
)

// Entry is one mutating request.
type Entry struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Actor is the authenticated user, or the client's address.
	Actor      string `json:"actor"`
	Repository string `json:"repository,omitempty"`
	// Operation names what was asked: manifest-put, manifest-delete,
	// tag-delete, blob-upload, blob-delete.
	Operation string `json:"operation"`
	Digest    string `json:"digest,omitempty"`
	Tag       string `json:"tag,omitempty"`
	Status    int    `json:"status"`
	Outcome   string `json:"outcome"`
	// Rule and Message say why a request was denied.
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message,omitempty"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash"`
}

// hash computes e's hash: SHA-256 over its JSON encoding with Hash empty.
func (e Entry) hash() (string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:]), nil
}

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    *os.File
	prev string
	seq  int64
}

// Open opens (or creates) the log at path and continues its chain; a log
// whose chain is broken is not appended to.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	rep, err := Verify(f)
	if err == nil && rep.Broken != nil {
		err = fmt.Errorf("%s line %d: %s; move it aside to start a new log", path, rep.Broken.Line, rep.Broken.Reason)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{f: f, prev: rep.Last, seq: int64(rep.Entries)}, nil
}

// Append chains e to the log and writes it as one line. Seq, Prev and Hash
// are set here; a zero Time is set to now.
func (l *Log) Append(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	l.seq++
	e.Seq, e.Prev = l.seq, l.prev
	h, err := e.hash()
	if err != nil {
		l.seq--
		return fmt.Errorf("audit log: %w", err)
	}
	e.Hash = h
	b, err := json.Marshal(e)
	if err != nil {
		l.seq--
		return fmt.Errorf("audit log: %w", err)
	}
	if _, err := l.f.Write(append(b, '\n')); err != nil {
		l.seq--
		return fmt.Errorf("audit log: %w", err)
	}
	l.prev = h
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Break is the first broken link of a chain.
type Break struct {
	// Line is 1-based.
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	// Entries counts the entries before the first break (all, if none).
	Entries int `json:"entries"`
	// Denied counts denied requests: policy violations.
	Denied int `json:"denied"`
	// Last is the hash of the last good entry (Genesis for an empty log).
	Last   string `json:"last"`
	Broken *Break `json:"broken,omitempty"`
}

// MaxLineBytes bounds one entry.
const MaxLineBytes = 1 << 20

// Verify reads a log from r and checks every link: each line decodes, its
// sequence number follows, its prev is the hash of the line before and its
// hash is its own. It stops at the first break. The error is for a log
// that cannot be read.
func Verify(r io.Reader) (*Report, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), MaxLineBytes)
	rep := &Report{Last: Genesis}
	line := 0
	for sc.Scan() {
		line++
		broken := func(format string, args ...any) (*Report, error) {
			rep.Broken = &Break{Line: line, Reason: fmt.Sprintf(format, args...)}
			return rep, nil
		}
		raw := sc.Bytes()
		var e Entry
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&e); err != nil {
			return broken("not an audit entry: %v", err)
		}
		if e.Seq != int64(rep.Entries+1) {
			return broken("sequence %d, want %d (an entry was removed or moved)", e.Seq, rep.Entries+1)
		}
		if e.Prev != rep.Last {
			return broken("prev %s does not match the hash %s of the entry before", e.Prev, rep.Last)
		}
		h, err := e.hash()
		if err != nil {
			return nil, err
		}
		if h != e.Hash {
			return broken("hash %s does not match the entry's content (%s): the entry was edited", e.Hash, h)
		}
		rep.Entries++
		rep.Last = h
		if e.Outcome == Denied {
			rep.Denied++
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			rep.Broken = &Break{Line: line + 1, Reason: fmt.Sprintf("line over %d bytes", MaxLineBytes)}
			return rep, nil
		}
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	return rep, nil
}
