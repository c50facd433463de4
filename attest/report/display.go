package report

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// UnmarshalJSON reads the string form MarshalJSON writes.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// displayed returns a copy of r for people to read (Markdown, HTML): its
// strings with every control character (newlines and tabs as spaces) and
// every bidirectional formatting character shown as U+XXXX, so that
// recorded text can neither drive a terminal nor reorder what a page
// shows. The JSON report keeps the strings as recorded.
func displayed(r *Report) (*Report, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("report: copy for display: %w", err)
	}
	c := new(Report)
	if err := json.Unmarshal(raw, c); err != nil {
		return nil, fmt.Errorf("report: copy for display: %w", err)
	}
	cleanStrings(reflect.ValueOf(c).Elem())
	return c, nil
}

func cleanStrings(v reflect.Value) {
	switch v.Kind() {
	case reflect.String:
		if v.CanSet() {
			v.SetString(clean(v.String()))
		}
	case reflect.Pointer:
		if !v.IsNil() {
			cleanStrings(v.Elem())
		}
	case reflect.Struct:
		for i := range v.NumField() {
			cleanStrings(v.Field(i))
		}
	case reflect.Slice:
		for i := range v.Len() {
			cleanStrings(v.Index(i))
		}
	}
}

// clean shows control and bidirectional formatting characters as U+XXXX;
// newlines, carriage returns and tabs become spaces.
func clean(s string) string {
	if !strings.ContainsFunc(s, hidden) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t':
			b.WriteByte(' ')
		case hidden(r):
			fmt.Fprintf(&b, "U+%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// hidden reports a character that is not shown as itself: a control
// character, or a bidirectional or other invisible formatting character.
func hidden(r rune) bool {
	return unicode.IsControl(r) || unicode.Is(unicode.Bidi_Control, r) || unicode.Is(unicode.Cf, r)
}
