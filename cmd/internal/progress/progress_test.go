package progress

import (
	"bytes"
	"io"
	"os"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/creack/pty"
)

// clock is a fake time that tests move by hand.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func newTest(width int, colour bool) (*Terminal, *bytes.Buffer, *clock) {
	var buf bytes.Buffer
	c := &clock{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	return newTerminal(&buf, width, colour, c.now), &buf, c
}

// A round of updates: drawn at once, at most every 50ms after, always
// at the end, then cleared with spaces; nothing after that.
func TestBarRedrawsAndClears(t *testing.T) {
	term, buf, c := newTest(120, false)
	b := term.Start("verify", "versions")
	if buf.Len() != 0 {
		t.Fatalf("Start drew %q", buf)
	}
	steps := []struct {
		after  time.Duration
		done   int
		item   string
		failed bool
		want   string // drawn, "" for nothing
	}{
		{time.Second, 1, "1.0.0", false, "\rverify [=====               ] 1/4 versions, 1.0/s, ETA 3s: 1.0.0"},
		{10 * time.Millisecond, 2, "1.1.0", true, ""}, // too soon
		{990 * time.Millisecond, 3, "2.0.0", false, "\rverify [===============     ] 3/4 versions, 1 failed, 1.5/s, ETA 1s: 2.0.0"},
		// Padded over the 3 columns more of the line before, then cleared.
		{time.Millisecond, 4, "2.1.0-rc.1", true, "\rverify [====================] 4/4 versions, 2 failed, 2.0/s: 2.1.0-rc.1   " +
			"\r" + strings.Repeat(" ", 74) + "\r"},
	}
	for _, s := range steps {
		c.advance(s.after)
		buf.Reset()
		b.Update(s.done, 4, s.item, s.failed)
		if got := buf.String(); got != s.want {
			t.Fatalf("Update(%d): drew\n%q, want\n%q", s.done, got, s.want)
		}
	}
	buf.Reset()
	b.Done()
	b.Done()
	if _, err := term.Write([]byte("summary\n")); err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != "summary\n" {
		t.Fatalf("after the end: %q", got)
	}
}

// A shorter line overwrites the rest of a longer one with spaces.
func TestBarPadsShorterLine(t *testing.T) {
	term, buf, c := newTest(120, false)
	b := term.Start("copy", "versions")
	b.Update(1, 3, "a-very-long-tag-name", false)
	c.advance(time.Second)
	buf.Reset()
	b.Update(2, 3, "b", false)
	long := "copy [======              ] 1/3 versions: a-very-long-tag-name"
	short := "copy [=============       ] 2/3 versions, 2.0/s, ETA 1s: b"
	want := "\r" + short + strings.Repeat(" ", len(long)-len(short))
	if got := buf.String(); got != want {
		t.Fatalf("drew\n%q, want\n%q", got, want)
	}
	buf.Reset()
	b.Done()
	if got, want := buf.String(), "\r"+strings.Repeat(" ", len(want)-1)+"\r"; got != want {
		t.Fatalf("Done drew %q, want %q", got, want)
	}
}

// The failure count is red with colour, and there is no escape sequence
// at all without.
func TestBarColour(t *testing.T) {
	for _, colour := range []bool{true, false} {
		term, buf, _ := newTest(120, colour)
		b := term.Start("monitor", "versions")
		b.Update(1, 2, "r:1.0.0", true)
		b.Update(2, 2, "r:1.1.0", false)
		got := buf.String()
		if red := strings.Contains(got, ", \x1b[31m1 failed\x1b[0m"); red != colour {
			t.Errorf("colour %v: red %v in %q", colour, red, got)
		}
		if !colour && strings.Contains(got, "\x1b") {
			t.Errorf("an escape sequence without colour: %q", got)
		}
	}
}

// A line never reaches the terminal's last column; the item is cut first.
func TestBarFitsWidth(t *testing.T) {
	for _, width := range []int{80, 40, 12} {
		term, buf, c := newTest(width, true)
		b := term.Start("publish", "workflows")
		for i := 1; i <= 3; i++ {
			c.advance(time.Second)
			b.Update(i, 3, strings.Repeat("workflows/", 10)+"x.yaml", true)
		}
		for _, frame := range strings.Split(buf.String(), "\r") {
			plain := strings.NewReplacer("\x1b[31m", "", "\x1b[0m", "").Replace(frame)
			if n := utf8.RuneCountInString(plain); n > width-1 {
				t.Errorf("width %d: a frame of %d columns: %q", width, n, frame)
			}
		}
		if !strings.Contains(buf.String(), "…") {
			t.Errorf("width %d: nothing was cut: %q", width, buf)
		}
	}
}

// A line written while the progress line is on screen clears it first,
// and the progress line is drawn again after it.
func TestWriteClearsAndRedraws(t *testing.T) {
	term, buf, _ := newTest(120, false)
	b := term.Start("monitor", "versions")
	b.Update(1, 2, "r:1.0.0", false)
	line := buf.String()
	buf.Reset()
	if _, err := io.WriteString(term, `{"level":"ERROR"}`+"\n"); err != nil {
		t.Fatal(err)
	}
	want := "\r" + strings.Repeat(" ", len(line)-1) + "\r" + `{"level":"ERROR"}` + "\n" + line
	if got := buf.String(); got != want {
		t.Fatalf("wrote\n%q, want\n%q", got, want)
	}
}

// The monitor's next pass is a new round: its rate starts from its first
// update and its failures from zero.
func TestBarRounds(t *testing.T) {
	term, buf, c := newTest(120, false)
	b := term.Start("monitor", "versions")
	c.advance(time.Second)
	b.Update(1, 2, "a", true)
	b.Update(2, 2, "b", true)
	c.advance(time.Hour)
	buf.Reset()
	b.Update(1, 2, "a", false)
	c.advance(time.Second)
	b.Update(2, 2, "b", false)
	last := "monitor [====================] 2/2 versions, 1.0/s: b"
	want := "\rmonitor [==========          ] 1/2 versions: a" + "\r" + last + "\r" + strings.Repeat(" ", len(last)) + "\r"
	if got := buf.String(); got != want {
		t.Fatalf("the second pass drew\n%q, want\n%q", got, want)
	}
}

// A nil Terminal and a nil Bar draw nothing.
func TestNilDrawsNothing(t *testing.T) {
	var term *Terminal
	b := term.Start("verify", "versions")
	if b != nil {
		t.Fatal("a nil Terminal started a Bar")
	}
	b.Update(1, 1, "x", true)
	b.Done()
}

// Open takes a terminal whose TERM is not dumb, and nothing else;
// NO_COLOR set and not empty turns colour off.
func TestOpen(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	if err := pty.Setsize(ptmx, &pty.Winsize{Rows: 24, Cols: 100}); err != nil {
		t.Fatal(err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	env := func(kv ...string) func(string) string {
		return func(k string) string {
			for i := 0; i < len(kv); i += 2 {
				if kv[i] == k {
					return kv[i+1]
				}
			}
			return ""
		}
	}
	cases := []struct {
		name   string
		w      io.Writer
		getenv func(string) string
		open   bool
		colour bool
	}{
		{"terminal", tty, env("TERM", "xterm"), true, true},
		{"no TERM", tty, env(), true, true},
		{"NO_COLOR=1", tty, env("TERM", "xterm", "NO_COLOR", "1"), true, false},
		{"NO_COLOR empty", tty, env("TERM", "xterm", "NO_COLOR", ""), true, true},
		{"TERM=dumb", tty, env("TERM", "dumb"), false, false},
		{"pipe", w, env("TERM", "xterm"), false, false},
		{"buffer", &bytes.Buffer{}, env("TERM", "xterm"), false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			term := Open(c.w, c.getenv)
			if (term != nil) != c.open {
				t.Fatalf("Open = %v, want a terminal: %v", term, c.open)
			}
			if term != nil && (term.colour != c.colour || term.width != 100) {
				t.Fatalf("colour %v width %d, want colour %v width 100", term.colour, term.width, c.colour)
			}
		})
	}
}
