// Package progress draws the progress of ociwf's long operations (verify
// --all, copy --all, monitor, bulk publish) as one line on a terminal:
// the items done of the total, the failures so far, the rate and the time
// left, and the item just finished. The line is redrawn in place with a
// carriage return and cleared when the operation ends, so that what is
// printed after it starts on a clean line.
//
// Nothing is drawn unless the stream is a terminal whose TERM is not
// "dumb"; the failure count is red only when NO_COLOR is unset or empty
// (no-color.org). The line uses no escape sequence other than that colour:
// it is erased by overwriting it with spaces.
package progress

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"golang.org/x/term"
)

// Terminal is a terminal stream that progress lines are drawn on. Its
// Write clears the line on screen before writing and draws it again
// after a complete line, so that logs written through it while an
// operation runs do not run into the progress line.
type Terminal struct {
	mu     sync.Mutex
	w      io.Writer
	width  int  // columns: a line never reaches the last one
	colour bool // NO_COLOR unset or empty
	now    func() time.Time
	bar    *Bar // the operation whose line is on screen, if any
	drawn  int  // columns of the line on screen; 0 when none
}

// fder is a stream with a file descriptor (an *os.File).
type fder interface{ Fd() uintptr }

// Open returns the Terminal of w when w is a terminal and TERM is not
// "dumb", else nil (which draws nothing). getenv reads TERM and NO_COLOR
// (os.Getenv).
func Open(w io.Writer, getenv func(string) string) *Terminal {
	f, ok := w.(fder)
	if !ok || getenv("TERM") == "dumb" {
		return nil
	}
	fd := int(f.Fd())
	if !term.IsTerminal(fd) {
		return nil
	}
	width, _, err := term.GetSize(fd)
	if err != nil || width <= 0 {
		width = 80
	}
	return newTerminal(w, width, getenv("NO_COLOR") == "", time.Now)
}

func newTerminal(w io.Writer, width int, colour bool, now func() time.Time) *Terminal {
	return &Terminal{w: w, width: width, colour: colour, now: now}
}

// Write writes p to the terminal, clearing the progress line first and,
// when p ends a line, drawing it again after.
func (t *Terminal) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clear()
	n, err := t.w.Write(p)
	if t.bar != nil && t.bar.round && len(p) > 0 && p[len(p)-1] == '\n' {
		t.draw(t.bar.line(t.now()))
	}
	return n, err
}

// Start begins the progress line of an operation named label ("verify")
// over items called unit ("versions"); it replaces the line of an
// operation started before. A nil Terminal returns a nil Bar, which draws
// nothing.
func (t *Terminal) Start(label, unit string) *Bar {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.clear()
	b := &Bar{t: t, label: label, unit: unit, start: t.now()}
	t.bar = b
	return b
}

// draw puts s on screen in place of the line there; t.mu is held.
func (t *Terminal) draw(s string, cols int) {
	pad := ""
	if t.drawn > cols {
		pad = strings.Repeat(" ", t.drawn-cols)
	}
	_, _ = io.WriteString(t.w, "\r"+s+pad)
	t.drawn = max(cols, t.drawn)
}

// clear erases the line on screen, if any; t.mu is held.
func (t *Terminal) clear() {
	if t.drawn == 0 {
		return
	}
	_, _ = io.WriteString(t.w, "\r"+strings.Repeat(" ", t.drawn)+"\r")
	t.drawn = 0
}

// redraw is the shortest time between two drawings of a line: more often
// is flicker, not information.
const redraw = 50 * time.Millisecond

// barWidth is the width of the bar between brackets.
const barWidth = 20

// Bar is the progress line of one operation. A nil *Bar draws nothing,
// so commands call it without checking whether stderr is a terminal.
type Bar struct {
	t           *Terminal
	label, unit string
	// start and done0 are when the rate is counted from and the items
	// done then: Start, or the first update after a round ended.
	start       time.Time
	done0       int
	round       bool // a round is under way (since start)
	done, total int
	failed      int
	item        string
	last        time.Time // last drawn
}

// Update records that done of total items are finished, the last of them
// item, which failed if failed, and redraws the line (at most every
// 50ms, and always when done reaches total). When done reaches total the
// line is drawn once more and cleared: the round is over, and a later
// Update (the monitor's next pass) starts a new one. Calls must be
// serialised, as the library's progress callbacks are.
func (b *Bar) Update(done, total int, item string, failed bool) {
	if b == nil {
		return
	}
	t := b.t
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if !b.round {
		if b.done == b.total && b.total > 0 { // a new round
			b.start, b.done0, b.failed = now, done, 0
		}
		b.round = true
	}
	b.done, b.total, b.item = done, total, item
	if failed {
		b.failed++
	}
	if t.bar != b {
		return // another operation's line is on screen
	}
	end := done >= total
	if end || t.drawn == 0 || now.Sub(b.last) >= redraw {
		t.draw(b.line(now))
		b.last = now
	}
	if end {
		t.clear()
		b.round = false
	}
}

// Done clears the line, if this operation's is on screen, and ends it.
// It may be called more than once.
func (b *Bar) Done() {
	if b == nil {
		return
	}
	t := b.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.bar == b {
		t.clear()
		t.bar = nil
	}
}

// line returns the progress line at now and the columns it takes:
//
//	verify [==========          ] 2/4 versions, 1 failed, 3.9/s, ETA 1s: 1.4.0
//
// cut to fit the terminal's width; t.mu is held.
func (b *Bar) line(now time.Time) (string, int) {
	n := 0
	if b.total > 0 {
		n = barWidth * min(b.done, b.total) / b.total
	}
	head := fmt.Sprintf("%s [%s%s] %d/%d %s", b.label, strings.Repeat("=", n), strings.Repeat(" ", barWidth-n), b.done, b.total, b.unit)
	failed := ""
	if b.failed > 0 {
		failed = fmt.Sprintf(", %d failed", b.failed)
	}
	tail := ""
	if elapsed := now.Sub(b.start); b.done > b.done0 && elapsed > 0 {
		rate := float64(b.done-b.done0) / elapsed.Seconds()
		tail = fmt.Sprintf(", %.1f/s", rate)
		eta := time.Duration(float64(b.total-b.done) / rate * float64(time.Second)).Round(time.Second)
		if eta > 0 {
			tail += ", ETA " + eta.String()
		}
	}
	if b.item != "" {
		tail += ": " + b.item
	}
	s := head + failed + tail
	cols := utf8.RuneCountInString(s)
	if room := b.t.width - 1; cols > room {
		s, cols = cut(s, room), room
	}
	if b.failed > 0 && b.t.colour && strings.HasPrefix(s, head+failed) {
		// ", 1 failed": the count and the word red, the comma not.
		s = head + ", \x1b[31m" + failed[2:] + "\x1b[0m" + s[len(head)+len(failed):]
	}
	return s, cols
}

// cut shortens s to n runes, the last of them "…" when it cut something.
func cut(s string, n int) string {
	if n <= 0 {
		return ""
	}
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
