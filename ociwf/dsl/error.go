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
	// Err is the class of the problem; nil means errdef.ErrInvalid.
	Err error
}

// Error formats the problem as "file:line:col: message".
func (e *Error) Error() string {
	if e.Line == 0 {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Column, e.Msg)
}

// Unwrap returns the class of the problem, errdef.ErrInvalid by default.
func (e *Error) Unwrap() error {
	if e.Err == nil {
		return errdef.ErrInvalid
	}
	return e.Err
}

// ErrorList is every problem found in a workflow, in source order. errors.Is
// matches the class of any of them (errdef.ErrInvalid for parse errors).
type ErrorList []*Error

// Error joins the problems, one a line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap returns the problems, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Sort orders the problems by position.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		if l[i].Line != l[j].Line {
			return l[i].Line < l[j].Line
		}
		return l[i].Column < l[j].Column
	})
}
