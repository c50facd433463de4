package audit_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/audit"
)

func writeLog(t *testing.T, n int) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		e := audit.Entry{Actor: "127.0.0.1", Repository: "wf/a", Operation: "manifest-put", Tag: "1.0.0", Status: 201, Outcome: audit.OK}
		if i%3 == 2 {
			e.Status, e.Outcome, e.Rule, e.Message = 403, audit.Denied, "semver", "tag 1.0.0 is immutable"
		}
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// reopen opens the log at path, appends one entry and returns the file.
func reopen(t *testing.T, path string) []byte {
	t.Helper()
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(audit.Entry{Actor: "a", Operation: "tag-delete", Status: 202, Outcome: audit.OK}); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func verify(t *testing.T, b []byte) *audit.Report {
	t.Helper()
	rep, err := audit.Verify(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestChain(t *testing.T) {
	path := writeLog(t, 6)
	// Reopening continues the chain.
	b := reopen(t, path)
	rep := verify(t, b)
	if rep.Broken != nil || rep.Entries != 7 || rep.Denied != 2 {
		t.Fatalf("report %+v", rep)
	}

	lines := strings.SplitAfter(string(b), "\n")
	tamper := map[string]struct {
		edit func([]string) []string
		line int
	}{
		"edited":    {func(l []string) []string { l[3] = strings.Replace(l[3], `"wf/a"`, `"wf/b"`, 1); return l }, 4},
		"removed":   {func(l []string) []string { return append(l[:2:2], l[3:]...) }, 3},
		"reordered": {func(l []string) []string { l[1], l[2] = l[2], l[1]; return l }, 2},
		"garbage":   {func(l []string) []string { l[5] = "{not json\n"; return l }, 6},
		"denial hidden": {func(l []string) []string {
			l[2] = strings.Replace(l[2], `"outcome":"denied"`, `"outcome":"ok"`, 1)
			return l
		}, 3},
	}
	for name, c := range tamper {
		got := verify(t, []byte(strings.Join(c.edit(append([]string(nil), lines...)), "")))
		if got.Broken == nil || got.Broken.Line != c.line {
			t.Errorf("%s: %+v, want a break at line %d", name, got.Broken, c.line)
		}
	}

	// A broken log is not appended to.
	os.WriteFile(path, []byte(strings.Replace(string(b), `"wf/a"`, `"wf/b"`, 1)), 0o640)
	if _, err := audit.Open(path); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("open a broken log: %v", err)
	}
}

// Verify never panics, and a log it accepts re-verifies to the same report.
func FuzzVerify(f *testing.F) {
	f.Add([]byte(""))
	f.Add([]byte("{}\n"))
	f.Add([]byte(`{"seq":1,"time":"2026-11-27T13:00:00Z","actor":"a","operation":"manifest-put","status":201,"outcome":"ok","prev":"` + audit.Genesis + `","hash":"sha256:00"}` + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rep, err := audit.Verify(bytes.NewReader(b))
		if err != nil {
			return
		}
		if rep.Denied > rep.Entries || (rep.Broken != nil && rep.Broken.Line < 1) {
			t.Fatalf("report %+v", rep)
		}
		if (rep.Broken == nil) != (len(rep.Breaks) == 0) || (rep.Broken != nil && *rep.Broken != rep.Breaks[0]) {
			t.Fatalf("Broken %+v, Breaks %+v", rep.Broken, rep.Breaks)
		}
		for i := 1; i < len(rep.Breaks); i++ {
			if rep.Breaks[i].Line <= rep.Breaks[i-1].Line {
				t.Fatalf("breaks out of order: %+v", rep.Breaks)
			}
		}
	})
}

// hostile are request fields a client controls, or a user name an
// authenticator passed on.
var hostile = []string{
	"\xff",
	"sha256:\xfe\xff",
	"a\x00b\x01\x1f\x7f",
	"\u2028\u2029",
	"<script>&amp;</script>",
	`"},"hash":"sha256:0000000000000000000000000000000000000000000000000000000000000000"}`,
	`\`, `\u0000`, `\xff`,
	"line\nbreak\r\n",
	"\xed\xa0\x80",     // an encoded surrogate: not UTF-8
	"\xef\xbf\xbd",     // U+FFFD itself
	"\xf4\x90\x80\x80", // beyond U+10FFFF
	"caf\xc3",          // cut in the middle of a rune
	"ünïcødé ✓ 🦀",
	strings.Repeat("\x01", 300_000),          // six bytes each once escaped
	strings.Repeat("\xff", 300_000),          // not UTF-8, all of it
	strings.Repeat("<", 2<<20),               // over a line
	strings.Repeat("é", audit.MaxFieldBytes), // at the limit in bytes, over it in runes
}

// Hostile field values are written as valid UTF-8 JSON whose hash both
// sides compute over the same bytes: the log verifies, reopens, and a
// value that is valid UTF-8 within the limit reads back as it was.
func TestHostileFields(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []audit.Entry
	for _, h := range hostile {
		for field := 0; field < 8; field++ {
			e := audit.Entry{Actor: "a", Operation: "blob-upload", Status: 401, Outcome: audit.Failed}
			*[]*string{&e.Actor, &e.Repository, &e.Operation, &e.Digest, &e.Asked, &e.Tag, &e.Rule, &e.Message}[field] = h
			if err := l.Append(e); err != nil {
				t.Fatalf("append %q: %v", h[:min(len(h), 40)], err)
			}
			want = append(want, e)
		}
	}
	l.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !utf8.Valid(b) {
		t.Error("the log is not valid UTF-8")
	}
	rep := verify(t, b)
	if rep.Broken != nil || len(rep.Breaks) != 0 || rep.Entries != len(want) {
		t.Fatalf("report %+v", rep)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d lines for %d entries", len(lines), len(want))
	}
	for i, line := range lines {
		if len(line) > audit.MaxLineBytes {
			t.Errorf("line %d: %d bytes", i+1, len(line))
		}
		var got audit.Entry
		if err := json.Unmarshal([]byte(line), &got); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		w := want[i]
		for j, pair := range [][2]string{{w.Actor, got.Actor}, {w.Repository, got.Repository}, {w.Operation, got.Operation}, {w.Digest, got.Digest}, {w.Asked, got.Asked}, {w.Tag, got.Tag}, {w.Rule, got.Rule}, {w.Message, got.Message}} {
			in, out := pair[0], pair[1]
			switch {
			case utf8.ValidString(in) && len(in) <= audit.MaxFieldBytes:
				if out != in {
					t.Errorf("line %d field %d: %q read back as %q", i+1, j, in[:min(len(in), 40)], out[:min(len(out), 40)])
				}
			case len(out) > audit.MaxFieldBytes+64:
				t.Errorf("line %d field %d: %d bytes kept", i+1, j, len(out))
			}
		}
	}
	if !strings.Contains(string(b), `"digest":"sha256:\\xfe\\xff"`) {
		t.Errorf("invalid bytes not written as \\xHH:\n%s", lines[8])
	}
	// The server reopens the log it wrote.
	reopen(t, path)
}

// A log written before entries were hashed over their bytes as written
// verifies, the entries the old verifier refused (invalid UTF-8 written as
// U+FFFD) included, and is appended to.
func TestOldLog(t *testing.T) {
	old, err := os.ReadFile("testdata/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, old); rep.Broken != nil || rep.Entries != 5 || rep.Denied != 1 {
		t.Fatalf("report %+v", rep)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	os.WriteFile(path, old, 0o640)
	b := reopen(t, path)
	if rep := verify(t, b); rep.Broken != nil || rep.Entries != 6 {
		t.Fatalf("report %+v", rep)
	}
}

// Verify reports every break, and resynchronises after one so that one
// edit is one break.
func TestBreaks(t *testing.T) {
	b, _ := os.ReadFile(writeLog(t, 9))
	lines := strings.SplitAfter(string(b), "\n")
	lines = lines[:len(lines)-1] // the empty string after the last newline
	edit := func(l string) string { return strings.Replace(l, `"wf/a"`, `"wf/x"`, 1) }
	rehash := func(l string) string {
		// The edit a forger makes: content and its hash both changed.
		i := strings.LastIndex(l, `"hash":"`)
		body := l[:i] + `"hash":""}`
		sum := sha256.Sum256([]byte(body))
		return l[:i] + `"hash":"sha256:` + hex.EncodeToString(sum[:]) + `"}` + "\n"
	}
	cases := map[string]struct {
		edit  func([]string) []string
		lines []int
	}{
		"intact":            {func(l []string) []string { return l }, nil},
		"two edited":        {func(l []string) []string { l[1], l[5] = edit(l[1]), edit(l[5]); return l }, []int{2, 6}},
		"one removed":       {func(l []string) []string { return append(l[:3:3], l[4:]...) }, []int{4}},
		"two removed":       {func(l []string) []string { return append(append(l[:1:1], l[2:6]...), l[7:]...) }, []int{2, 6}},
		"first removed":     {func(l []string) []string { return l[1:] }, []int{1}},
		"edited and hashed": {func(l []string) []string { l[2] = rehash(edit(l[2])); return l }, []int{4}},
		"garbage":           {func(l []string) []string { l[4] = "{not json\n"; return l }, []int{5}},
		"garbage, removed":  {func(l []string) []string { l[4] = "x\n"; return append(l[:6:6], l[7:]...) }, []int{5, 7}},
		"empty line":        {func(l []string) []string { l[4] = "\n"; return l }, []int{5}},
		"long line":         {func(l []string) []string { l[3] = strings.Repeat("x", audit.MaxLineBytes+10) + "\n"; return l }, []int{4}},
		"cut short": {func(l []string) []string {
			l[8] = strings.TrimSuffix(l[8], "\n")
			return l
		}, []int{9}},
		"CRLF": {func(l []string) []string { l[6] = strings.TrimSuffix(l[6], "\n") + "\r\n"; return l }, []int{7}},
		"duplicated": {func(l []string) []string {
			return append(append(l[:5:5], l[4]), l[5:]...)
		}, []int{6}},
		"swapped": {func(l []string) []string { l[2], l[3] = l[3], l[2]; return l }, []int{3, 5}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got := verify(t, []byte(strings.Join(c.edit(append([]string(nil), lines...)), "")))
			var at []int
			for _, br := range got.Breaks {
				at = append(at, br.Line)
			}
			if !slices.Equal(at, c.lines) {
				t.Fatalf("breaks %+v, want lines %v", got.Breaks, c.lines)
			}
			if len(c.lines) == 0 {
				if got.Broken != nil {
					t.Fatalf("Broken %+v", got.Broken)
				}
				return
			}
			if got.Broken == nil || *got.Broken != got.Breaks[0] {
				t.Fatalf("Broken %+v is not the first of %+v", got.Broken, got.Breaks)
			}
		})
	}
}

// A broken log is not appended to; the error names the first break, how
// many there are and what to do.
func TestOpenBroken(t *testing.T) {
	path := writeLog(t, 5)
	b, _ := os.ReadFile(path)
	lines := strings.SplitAfter(string(b), "\n")
	lines[1] = strings.Replace(lines[1], `"wf/a"`, `"wf/b"`, 1)
	lines[3] = strings.Replace(lines[3], `"wf/a"`, `"wf/b"`, 1)
	os.WriteFile(path, []byte(strings.Join(lines, "")), 0o640)
	_, err := audit.Open(path)
	if !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("open a broken log: %v", err)
	}
	for _, want := range []string{path + " line 2: hash", "2 breaks", "ociwf audit verify " + path, "move it aside"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q lacks %q", err, want)
		}
	}
	if after, _ := os.ReadFile(path); string(after) != strings.Join(lines, "") {
		t.Error("a broken log was written to")
	}
}

// Hostile fields round-trip through Append and Verify: the log verifies,
// is valid UTF-8, and a valid value within the limit reads back unchanged.
func FuzzAppend(f *testing.F) {
	for _, h := range hostile[:14] {
		f.Add(h, h, h, h)
	}
	f.Fuzz(func(t *testing.T, actor, dg, tag, msg string) {
		var buf bytes.Buffer
		path := filepath.Join(t.TempDir(), "audit.jsonl")
		l, err := audit.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		e := audit.Entry{Actor: actor, Repository: tag, Operation: msg, Digest: dg, Asked: dg, Tag: tag, Status: 403, Outcome: audit.Denied, Rule: actor, Message: msg}
		for i := 0; i < 2; i++ {
			if err := l.Append(e); err != nil {
				t.Fatal(err)
			}
		}
		l.Close()
		b, _ := os.ReadFile(path)
		buf.Write(b)
		if !utf8.Valid(b) {
			t.Fatalf("not UTF-8: %q", b)
		}
		rep := verify(t, buf.Bytes())
		if len(rep.Breaks) != 0 || rep.Entries != 2 || rep.Denied != 2 {
			t.Fatalf("report %+v for\n%q", rep, b)
		}
		var got audit.Entry
		if err := json.Unmarshal(bytes.SplitN(b, []byte("\n"), 2)[0], &got); err != nil {
			t.Fatal(err)
		}
		for _, pair := range [][2]string{{actor, got.Actor}, {dg, got.Digest}, {tag, got.Tag}, {msg, got.Message}} {
			if utf8.ValidString(pair[0]) && len(pair[0]) <= audit.MaxFieldBytes && pair[0] != pair[1] {
				t.Fatalf("%q read back as %q", pair[0], pair[1])
			}
		}
	})
}

// The predicate types of an accessory PUT are written before prev, and
// verify; an entry without them is written as before, byte for byte.
func TestPredicateTypes(t *testing.T) {
	old, err := os.ReadFile("testdata/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	first, _, _ := strings.Cut(string(old), "\n")
	var e audit.Entry
	if err := json.Unmarshal([]byte(first), &e); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := l.Append(e); err != nil {
		t.Fatal(err)
	}
	types := []string{"https://ociwf.dev/lifecycle/event/v1", "", "https://ociwf.dev/lifecycle/approval/v1"}
	if err := l.Append(audit.Entry{Actor: "ci", Repository: "wf/a", Operation: "manifest-put", Tag: "sha256-00.att", Status: 201, Outcome: audit.OK, PredicateTypes: types}); err != nil {
		t.Fatal(err)
	}
	many := make([]string, 3*audit.MaxFieldBytes)
	for i := range many {
		many[i] = "\xff<"
	}
	if err := l.Append(audit.Entry{Actor: "ci", Operation: "manifest-put", Status: 201, Outcome: audit.OK, PredicateTypes: many}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if lines[0] != first {
		t.Errorf("an entry without predicate types is written as\n%s\nnot as before\n%s", lines[0], first)
	}
	if !strings.Contains(lines[1], `"outcome":"ok","predicateTypes":["https://ociwf.dev/lifecycle/event/v1","https://ociwf.dev/lifecycle/approval/v1"],"prev":"sha256:`) {
		t.Errorf("predicate types written as\n%s", lines[1])
	}
	if len(lines[2]) > audit.MaxLineBytes || !utf8.ValidString(lines[2]) || !strings.Contains(lines[2], `more cut]"],"prev"`) {
		t.Errorf("a hostile list is written in %d bytes: %.200s…%s", len(lines[2]), lines[2], lines[2][len(lines[2])-200:])
	}
	if rep := verify(t, b); rep.Broken != nil || rep.Entries != 3 {
		t.Fatalf("report %+v", rep)
	}
	reopen(t, path)
}

// The monitor's check entries share the chain with requests: a log mixing
// both (here appended to the golden v1 log) verifies, counts each kind,
// and an edited kind breaks the chain; an unknown kind is refused.
func TestCheckEntries(t *testing.T) {
	old, err := os.ReadFile("testdata/v1.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "mixed.jsonl")
	if err := os.WriteFile(path, old, 0o640); err != nil {
		t.Fatal(err)
	}
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []audit.Entry{
		{Kind: audit.KindCheck, Actor: "monitor", Operation: "verify", Repository: "wf/a", Digest: "sha256:" + strings.Repeat("a", 64), Tag: "1.0.0", Outcome: audit.OK},
		{Kind: audit.KindCheck, Actor: "monitor", Operation: "verify", Repository: "wf/a", Tag: "1.0.1", Outcome: audit.Failed, Rule: "blobs", Message: "layer digest mismatch"},
	} {
		if err := l.Append(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Append(audit.Entry{Kind: "other", Operation: "x"}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("unknown kind: %v", err)
	}
	l.Close()
	b, _ := os.ReadFile(path)
	if rep := verify(t, b); rep.Broken != nil || rep.Entries != 7 || rep.Denied != 1 || rep.Checks != 2 || rep.CheckFailures != 1 {
		t.Fatalf("report %+v", rep)
	}
	lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
	if !strings.Contains(lines[6], `"kind":"check"`) {
		t.Fatalf("check entry without its kind: %s", lines[6])
	}
	lines[6] = strings.Replace(lines[6], `"kind":"check"`, `"kind":"checx"`, 1)
	rep := verify(t, []byte(strings.Join(lines, "\n")+"\n"))
	if rep.Broken == nil || rep.Broken.Line != 7 {
		t.Fatalf("edited kind: %+v", rep)
	}
}

// A log has one writer: a second Open of a log that is open fails, naming
// the fix, until the first is closed.
func TestOpenOneWriter(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Open(path); !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "its own log") {
		t.Fatalf("second writer: %v, want ErrInvalid", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = audit.Open(path)
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	l.Close()
}
