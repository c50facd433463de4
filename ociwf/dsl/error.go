package dsl

import (
	"fmt"
	"sort"
	"strings"

	"ociwf.dev/ociwf/errdef"
)

// Error is one problem in workflow source, located at a line and column.
type Error struct {
	File   string
	Line   int
	Column int
	Msg    string
}

// Error formats the problem as "file:line:col: message".
func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// ErrorList is every problem Parse found, in source order. It matches
// errdef.ErrInvalid with errors.Is.
type ErrorList []*Error

// Error joins the problems, one a line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Is reports whether target is errdef.ErrInvalid.
func (l ErrorList) Is(target error) bool { return target == errdef.ErrInvalid }

func (l ErrorList) sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Column < l[j].Column
	})
}
