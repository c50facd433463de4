// Package audit keeps the registry's audit log: one JSON object per line,
// each entry carrying the hash of the entry before it, so that editing,
// removing or reordering any line breaks the chain there. An entry's hash
// covers the exact bytes of its line as written (see Append), so no field
// value can make the writer and the verifier hash different bytes. Verify
// walks a log and names every broken link; entries with outcome "denied"
// are the policy violations.
//
// Two kinds of entry share the construction: the registry's requests
// (Kind empty, as every entry before kinds existed) and the integrity
// monitor's checks (Kind KindCheck), so one verifier reads both logs.
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
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"ociwf.dev/ociwf/errdef"
)

// Genesis is the previous-entry hash of the first entry.
const Genesis = "sha256:0000000000000000000000000000000000000000000000000000000000000000"

// Outcomes.
const (
	OK     = "ok"
	Denied = "denied"
	Failed = "failed"
)

// Kinds of entry.
const (
	// KindRequest (empty, and so absent from the line) is a mutating
	// request to the registry.
	KindRequest = ""
	// KindCheck is one re-verification of a version by the integrity
	// monitor: Repository, Digest and Tag name the version, Operation is
	// "verify", Outcome is OK or Failed (or Error, when the version could
	// not be checked at all), Rule is the failed check and Message the
	// reason.
	KindCheck = "check"
)

// Error is the outcome of a check that could not run (an unreachable
// registry): neither passed nor failed.
const Error = "error"

// Entry is one mutating request or, with Kind KindCheck, one check of the
// integrity monitor.
type Entry struct {
	Seq  int64     `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is KindRequest or KindCheck.
	Kind string `json:"kind,omitempty"`
	// Actor is the authenticated user, or the client's address.
	Actor      string `json:"actor"`
	Repository string `json:"repository,omitempty"`
	// Operation names what was asked: manifest-put, manifest-delete,
	// tag-delete, blob-upload (each step of one), blob-upload-cancel,
	// blob-delete.
	Operation string `json:"operation"`
	// Digest is what the request committed or removed, as the registry
	// determined it; for a denied request, the digest the rule refused.
	Digest string `json:"digest,omitempty"`
	// Asked is a digest the request named, as the client sent it, that it
	// did not commit or remove: that of a failed or denied request, or of
	// an upload step before the last.
	Asked   string `json:"asked,omitempty"`
	Tag     string `json:"tag,omitempty"`
	Status  int    `json:"status"`
	Outcome string `json:"outcome"`
	// Rule and Message say why a request was denied.
	Rule    string `json:"rule,omitempty"`
	Message string `json:"message,omitempty"`
	// PredicateTypes are the predicate types of the attestations an
	// accessory manifest PUT adds (for a referrer without any, its
	// artifact type), so lifecycle events and approvals show in the log.
	PredicateTypes []string `json:"predicateTypes,omitempty"`
	Prev           string   `json:"prev"`
	// Hash is the last member of the line; see Append.
	Hash string `json:"hash"`
}

// MaxLineBytes bounds one line.
const MaxLineBytes = 1 << 20

// MaxFieldBytes bounds one string field of an entry, after invalid UTF-8
// is escaped; Append cuts longer values. It also bounds PredicateTypes,
// counting three bytes more for each element. All ten string fields and
// PredicateTypes at the limit, each byte escaped by JSON into six, stay
// under MaxLineBytes.
const MaxFieldBytes = 16 << 10

// MaxBreaks bounds the breaks a Report lists; further ones are counted.
const MaxBreaks = 1000

// The written form of a line: `{…,"hash":"sha256:<64 hex>"}`.
const (
	hashKey      = `,"hash":"`
	hashValueLen = len("sha256:") + sha256.Size*2
	lineTail     = len(hashKey) + hashValueLen + len(`"}`)
)

// clean makes s valid UTF-8 of at most MaxFieldBytes bytes: each byte
// that is not part of a UTF-8 sequence becomes the four characters \xHH,
// and a longer value is cut at a character boundary and ends in a note of
// how many bytes were cut.
func clean(s string) string {
	if len(s) <= MaxFieldBytes && utf8.ValidString(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		piece := s[i : i+size]
		if r == utf8.RuneError && size == 1 {
			piece = fmt.Sprintf(`\x%02x`, s[i])
		}
		if b.Len()+len(piece) > MaxFieldBytes {
			fmt.Fprintf(&b, "…[%d bytes cut]", len(s)-i)
			break
		}
		b.WriteString(piece)
		i += size
	}
	return b.String()
}

// cleanList cleans each value of l as clean does, leaves out empty ones
// and bounds the rest to MaxFieldBytes (each value counting three bytes
// more, for its quotes and comma); what is cut is noted as its last
// element, "…[N more cut]".
func cleanList(l []string) []string {
	var out []string
	n := 0
	for i, s := range l {
		if s == "" {
			continue
		}
		s = clean(s)
		if n+len(s)+3 > MaxFieldBytes {
			out = append(out, fmt.Sprintf("…[%d more cut]", len(l)-i))
			break
		}
		n += len(s) + 3
		out = append(out, s)
	}
	return out
}

// encode returns e's line (with its newline) and hash. The entry is
// encoded with Hash empty, as compact JSON ending in `"hash":""}`; the
// hash is SHA-256 over exactly those bytes, and the line is them with the
// hash written into the empty value.
func (e Entry) encode() ([]byte, string, error) {
	e.Hash = ""
	b, err := json.Marshal(e)
	if err != nil {
		return nil, "", err
	}
	if !bytes.HasSuffix(b, []byte(`"hash":""}`)) {
		return nil, "", fmt.Errorf("entry encodes without its hash last")
	}
	sum := sha256.Sum256(b)
	h := "sha256:" + hex.EncodeToString(sum[:])
	line := make([]byte, 0, len(b)+len(h)+1)
	line = append(line, b[:len(b)-2]...)
	line = append(line, h...)
	line = append(line, `"}`+"\n"...)
	if len(line)-1 > MaxLineBytes {
		return nil, "", fmt.Errorf("entry of %d bytes is over %d: %w", len(line)-1, MaxLineBytes, errdef.ErrTooLarge)
	}
	return line, h, nil
}

// Log appends entries to a file. It is safe for concurrent use.
type Log struct {
	mu   sync.Mutex
	f    logFile
	size int64 // bytes of whole lines in f
	err  error // set once a failed write could not be undone
	prev string
	seq  int64
}

// logFile is what Log needs of its file.
type logFile interface {
	Write([]byte) (int, error)
	Truncate(size int64) error
	Close() error
}

// Open opens (or creates) the log at path and continues its chain, as its
// only writer: a log another process (or Log) has open fails with
// errdef.ErrInvalid. A log with a broken chain is not appended to: the
// error names its first break and wraps errdef.ErrVerification.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("audit log: %w", err)
	}
	rep, err := Verify(f)
	if err == nil && rep.Broken != nil {
		n := len(rep.Breaks) + rep.MoreBreaks
		breaks := "1 break"
		if n > 1 {
			breaks = fmt.Sprintf("%d breaks", n)
		}
		err = fmt.Errorf("%s line %d: %s (%s in all); see them with ociwf audit verify %s, then move it aside to start a new log: %w",
			path, rep.Broken.Line, rep.Broken.Reason, breaks, path, errdef.ErrVerification)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	// One writer per file: two processes (replicas of one registry)
	// appending to one log would interleave their chains and break both.
	// It is checked after the chain, so a broken log is reported as such
	// whoever has it open. The kernel drops the lock when the process
	// ends.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("audit log: %s is open for writing by another process; give each registry replica its own log (registry serve --audit-log) and check them together with ociwf audit verify FILE...: %w", path, errdef.ErrInvalid)
		}
		return nil, fmt.Errorf("audit log: lock %s: %w", path, err)
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("audit log: %w", err)
	}
	return &Log{f: f, size: size, prev: rep.Last, seq: rep.Seq}, nil
}

// Append chains e to the log and writes it as one line. Seq, Prev and Hash
// are set here; a zero Time is set to now. String fields are made valid
// UTF-8 and bounded first (invalid bytes written as \xHH, values over
// MaxFieldBytes cut), so the line is valid UTF-8 JSON for any input.
func (l *Log) Append(e Entry) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Time = e.Time.UTC()
	if e.Kind != KindRequest && e.Kind != KindCheck {
		return fmt.Errorf("audit log: entry kind %q, want %q or none: %w", clean(e.Kind), KindCheck, errdef.ErrInvalid)
	}
	for _, s := range []*string{&e.Actor, &e.Repository, &e.Operation, &e.Digest, &e.Asked, &e.Tag, &e.Outcome, &e.Rule, &e.Message} {
		*s = clean(*s)
	}
	e.PredicateTypes = cleanList(e.PredicateTypes)
	e.Seq, e.Prev = l.seq+1, l.prev
	line, h, err := e.encode()
	if err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	if l.err != nil {
		return l.err
	}
	if n, err := l.f.Write(line); err != nil {
		if n > 0 {
			// Cut the partial line off, so the next entry does not
			// continue it; if that fails too, write nothing more: an
			// entry glued to a partial line would break the chain.
			if terr := l.f.Truncate(l.size); terr != nil {
				l.err = fmt.Errorf("audit log: a partial entry could not be removed (%v); the log takes no more entries: %w", terr, err)
				return l.err
			}
		}
		return fmt.Errorf("audit log: %w", err)
	}
	l.size += int64(len(line))
	l.seq, l.prev = e.Seq, h
	return nil
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// Break is one broken link of a chain.
type Break struct {
	// Line is 1-based.
	Line   int    `json:"line"`
	Reason string `json:"reason"`
}

// Report is what Verify found.
type Report struct {
	// Entries counts the entries that verified: every line that decodes,
	// follows the entry before and hashes to its own hash.
	Entries int `json:"entries"`
	// Denied counts denied requests among them: policy violations.
	Denied int `json:"denied"`
	// Checks counts the monitor's check entries among them, and
	// CheckFailures those whose outcome is Failed.
	Checks        int `json:"checks,omitempty"`
	CheckFailures int `json:"check_failures,omitempty"`
	// Seq and Last are the sequence number and hash of the last entry
	// (0 and Genesis for an empty log): the next entry follows them.
	Seq  int64  `json:"seq"`
	Last string `json:"last"`
	// First is the hash of the first entry when it verified: every log
	// starts its own chain, so two logs with one First are copies of one
	// chain (SameChain).
	First string `json:"first,omitempty"`
	// Broken is the first break, nil if the chain is intact.
	Broken *Break `json:"broken,omitempty"`
	// Breaks lists every break in line order, at most MaxBreaks of them;
	// MoreBreaks counts those left off.
	Breaks     []Break `json:"breaks,omitempty"`
	MoreBreaks int     `json:"more_breaks,omitempty"`
}

// SameChain reports whether rep and other are reports of one chain (a
// log and a copy of it, whole or cut short): their first entries are one.
func (rep *Report) SameChain(other *Report) bool {
	return rep.First != "" && rep.First == other.First
}

func (rep *Report) addBreak(line int, format string, args ...any) {
	if len(rep.Breaks) == MaxBreaks {
		rep.MoreBreaks++
		return
	}
	rep.Breaks = append(rep.Breaks, Break{Line: line, Reason: fmt.Sprintf(format, args...)})
	rep.Broken = &rep.Breaks[0]
}

// link is what one line claims: its place in the chain, and whether the
// line itself is sound.
type link struct {
	decoded bool
	seq     int64
	prev    string
	hash    string // claimed
	problem string // why the line itself is not sound, or ""
	denied  bool
	check   bool // a monitor check
	failed  bool // a failed monitor check
	entry   Entry
}

// parse reads one line (without its newline): it decodes strictly, ends
// in the written form, and hashes to the hash it claims.
func parse(raw []byte) link {
	var l link
	var e Entry
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	err := dec.Decode(&e)
	if err == nil && dec.More() {
		err = errors.New("data after the entry")
	}
	if err != nil {
		l.problem = fmt.Sprintf("not an audit entry: %v", err)
		return l
	}
	l.decoded, l.seq, l.prev, l.hash, l.entry = true, e.Seq, e.Prev, e.Hash, e
	switch e.Kind {
	case KindRequest:
		l.denied = e.Outcome == Denied
	case KindCheck:
		l.check, l.failed = true, e.Outcome == Failed
	default:
		l.problem = fmt.Sprintf("unknown entry kind %q", e.Kind)
		return l
	}
	n := len(raw)
	if n < 1+lineTail || string(raw[n-lineTail:n-lineTail+len(hashKey)]) != hashKey || string(raw[n-2:]) != `"}` ||
		string(raw[n-2-hashValueLen:n-2]) != e.Hash || !validHash(e.Hash) {
		l.problem = "the line does not end in its hash as the log writes it: the entry was edited"
		return l
	}
	body := make([]byte, 0, n-hashValueLen)
	body = append(body, raw[:n-2-hashValueLen]...)
	body = append(body, `"}`...)
	sum := sha256.Sum256(body)
	if h := "sha256:" + hex.EncodeToString(sum[:]); h != e.Hash {
		l.problem = fmt.Sprintf("hash %s does not match the entry's content (%s): the entry was edited", e.Hash, h)
	}
	return l
}

func validHash(h string) bool {
	if len(h) != hashValueLen || !strings.HasPrefix(h, "sha256:") {
		return false
	}
	for _, c := range h[len("sha256:"):] {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// chain is where verification stands: the sequence number the next entry
// must carry and the hash it must name ("" after a line that did not
// decode: any).
type chain struct {
	seq  int64
	prev string
}

func (c chain) links(l link) bool {
	return l.decoded && l.seq == c.seq && (c.prev == "" || l.prev == c.prev)
}

func (c chain) after(l link) chain { return chain{l.seq + 1, l.hash} }

// Verify reads a log from r and checks every link: each line decodes, ends
// in its hash as Append writes it, its hash is SHA-256 over the line's own
// bytes with the hash value empty, its sequence number follows and its
// prev is the hash of the entry before. It reports every break, each once:
//
//   - a line whose content was edited is one break; the chain continues
//     from the hash the line claims, so the line after it is not a break;
//   - a line that does not follow the entry before (removed, inserted,
//     moved) is one break; if the line after it follows the entry before,
//     the line was inserted and the chain continues from the entry before,
//     otherwise from the line's own sequence number and hash. A removed
//     line breaks the chain at the line after it; a line moved elsewhere
//     breaks it twice, where it is and where it was;
//   - a line that does not decode (garbage, an empty line, a line over
//     MaxLineBytes) is one break, and the line after it is taken to follow
//     whatever it names;
//   - a last line without its newline (a write cut short) is a break.
//
// Removing lines at the end leaves no break: compare Seq and Last with a
// copy kept elsewhere. The error is for a log that cannot be read.
func Verify(r io.Reader) (*Report, error) { return VerifyEach(r, nil) }

// VerifyEach is Verify, calling each (when not nil) with every entry that
// verified, in order: a reader of the log's figures counts exactly what
// Verify counts, never an edited, inserted or undecodable line.
func VerifyEach(r io.Reader, each func(Entry)) (*Report, error) {
	rep := &Report{Last: Genesis}
	c := chain{seq: 1, prev: Genesis}
	var pending *link // broke the chain; resync decided by the next line
	resolvePending := func(next *link) {
		if pending == nil {
			return
		}
		if next == nil || !c.links(*next) {
			c = c.after(*pending)
		}
		pending = nil
	}
	br := bufio.NewReaderSize(r, 64<<10)
	var buf []byte
	for n := 1; ; n++ {
		raw, complete, tooLong, err := readLine(br, buf[:0])
		if err != nil {
			return nil, fmt.Errorf("read audit log: %w", err)
		}
		if raw == nil && !tooLong {
			break
		}
		buf = raw
		var l link
		switch {
		case tooLong:
			l = link{problem: fmt.Sprintf("line over %d bytes", MaxLineBytes)}
		default:
			l = parse(raw)
			if !complete && l.problem == "" {
				l.problem = "the line has no newline: the write was cut short or the file edited"
			}
		}
		resolvePending(&l)
		switch {
		case !l.decoded:
			rep.addBreak(n, "%s", l.problem)
			c = chain{seq: c.seq + 1}
		case l.seq != c.seq:
			rep.addBreak(n, "sequence %d, want %d (an entry was removed, inserted or moved)", l.seq, c.seq)
			pending = &l
		case c.prev != "" && l.prev != c.prev:
			rep.addBreak(n, "prev %s does not match the hash %s of the entry before (an entry was removed, inserted or moved)", l.prev, c.prev)
			pending = &l
		case l.problem != "":
			rep.addBreak(n, "%s", l.problem)
			c = c.after(l)
		default:
			if n == 1 {
				rep.First = l.hash
			}
			rep.Entries++
			if l.denied {
				rep.Denied++
			}
			if l.check {
				rep.Checks++
			}
			if l.failed {
				rep.CheckFailures++
			}
			if each != nil {
				each(l.entry)
			}
			c = c.after(l)
		}
	}
	resolvePending(nil)
	rep.Seq, rep.Last = c.seq-1, c.prev
	if rep.Last == "" {
		rep.Last = Genesis
	}
	return rep, nil
}

// readLine reads one line into buf without its newline. It returns a nil
// line at the end of r; complete is false for a last line without a
// newline; a line over MaxLineBytes is skipped and reported as tooLong.
func readLine(br *bufio.Reader, buf []byte) (line []byte, complete, tooLong bool, err error) {
	for {
		chunk, err := br.ReadSlice('\n')
		if !tooLong {
			if len(buf)+len(chunk) > MaxLineBytes+1 {
				tooLong, buf = true, buf[:0]
			} else {
				buf = append(buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(buf) == 0 && !tooLong {
				return nil, false, false, nil
			}
			return buf, false, tooLong, nil
		case err != nil:
			return nil, false, false, err
		}
		if tooLong {
			return buf, true, true, nil
		}
		return buf[:len(buf)-1], true, false, nil
	}
}
