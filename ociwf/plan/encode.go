package plan

import (
	"errors"
	"slices"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"

	jsoncanonicalizer "github.com/cyberphone/json-canonicalization/go/src/webpki.org/jsoncanonicalizer"

	"ociwf.dev/ociwf/internal/canon"
)

// The encoder below writes the canonical JSON of a plan directly, giving
// the bytes canon.Marshal gives (encoding/json, then RFC 8785
// canonicalization) without the intermediate JSON and its re-parsing:
// object members sorted by the UTF-16 code units of their names, strings
// escaped as RFC 8785 does, numbers in the ECMAScript form. A string that
// is not valid UTF-8 (which encoding/json would alter) makes the whole
// plan go through canon.Marshal; a param value of a type the encoder does
// not know goes through canon.Marshal alone, as canonical JSON composes.

// errSlowPath asks for the plan to be encoded by canon.Marshal.
var errSlowPath = errors.New("plan encoding needs the generic encoder")

type encoder struct {
	buf []byte
	err error // the first error
}

func (e *encoder) fail(err error) {
	if e.err == nil {
		e.err = err
	}
}

// encodePlan returns the canonical JSON encoding of p.
func encodePlan(p *Plan) ([]byte, error) {
	e := &encoder{buf: make([]byte, 0, 1024+256*len(p.Steps))}
	e.plan(p)
	switch {
	case errors.Is(e.err, errSlowPath):
		return canon.Marshal(p)
	case e.err != nil:
		return nil, e.err
	}
	return e.buf, nil
}

// key writes the name of an object member, with the comma before it when
// it is not the first; first is reset.
func (e *encoder) key(first *bool, name string) {
	if !*first {
		e.buf = append(e.buf, ',')
	}
	*first = false
	e.str(name)
	e.buf = append(e.buf, ':')
}

// str writes s as RFC 8785 does.
func (e *encoder) str(s string) {
	e.buf = append(e.buf, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' && c < utf8.RuneSelf {
			continue
		}
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				e.fail(errSlowPath)
			}
			i += size - 1
			continue
		}
		e.buf = append(e.buf, s[start:i]...)
		switch c {
		case '"', '\\':
			e.buf = append(e.buf, '\\', c)
		case '\b':
			e.buf = append(e.buf, '\\', 'b')
		case '\f':
			e.buf = append(e.buf, '\\', 'f')
		case '\n':
			e.buf = append(e.buf, '\\', 'n')
		case '\r':
			e.buf = append(e.buf, '\\', 'r')
		case '\t':
			e.buf = append(e.buf, '\\', 't')
		default:
			const hex = "0123456789abcdef"
			e.buf = append(e.buf, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	e.buf = append(e.buf, s[start:]...)
	e.buf = append(e.buf, '"')
}

// int writes n as RFC 8785 writes the IEEE 754 double nearest to it.
func (e *encoder) int(n int64) {
	const exact = 1 << 53
	if -exact < n && n < exact {
		e.buf = strconv.AppendInt(e.buf, n, 10)
		return
	}
	s, err := jsoncanonicalizer.NumberToJSON(float64(n))
	if err != nil {
		e.fail(err)
		return
	}
	e.buf = append(e.buf, s...)
}

func (e *encoder) strs(l []string) {
	if l == nil {
		e.buf = append(e.buf, "null"...)
		return
	}
	e.array(len(l), func(i int) { e.str(l[i]) })
}

// array writes a JSON array of n items, item(i) writing each.
func (e *encoder) array(n int, item func(i int)) {
	e.buf = append(e.buf, '[')
	for i := range n {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		item(i)
	}
	e.buf = append(e.buf, ']')
}

// strMap writes m with its keys in the order of their UTF-16 code units.
func (e *encoder) strMap(m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, compareUTF16)
	e.buf = append(e.buf, '{')
	first := true
	for _, k := range keys {
		e.key(&first, k)
		e.str(m[k])
	}
	e.buf = append(e.buf, '}')
}

// compareUTF16 orders valid UTF-8 strings by their UTF-16 code units, as
// RFC 8785 sorts object members. It differs from byte order only where a
// character above U+FFFF meets one in U+E000..U+FFFF.
func compareUTF16(a, b string) int {
	for a != "" && b != "" {
		ra, na := utf8.DecodeRuneInString(a)
		rb, nb := utf8.DecodeRuneInString(b)
		if ra != rb {
			if ua, ub := firstUnit(ra), firstUnit(rb); ua != ub {
				return int(ua) - int(ub)
			}
			// Both above U+FFFF with the same high surrogate: the low
			// surrogates are in the order of the characters.
			return int(ra - rb)
		}
		a, b = a[na:], b[nb:]
	}
	return len(a) - len(b)
}

func firstUnit(r rune) uint16 {
	if r1, _ := utf16.EncodeRune(r); r1 != utf8.RuneError {
		return uint16(r1)
	}
	return uint16(r)
}

// value writes a param default or enum value.
func (e *encoder) value(v any) {
	switch x := v.(type) {
	case string:
		e.str(x)
	case int64:
		e.int(x)
	case bool:
		e.buf = strconv.AppendBool(e.buf, x)
	case []string:
		e.strs(x)
	default:
		// canon.Marshal takes an object or an array: encode v as the
		// element of one.
		b, err := canon.Marshal([]any{v})
		if err != nil {
			e.fail(err)
			return
		}
		e.buf = append(e.buf, b[1:len(b)-1]...)
	}
}

// The members of each object below are written in the order of their
// names, which are ASCII, so byte order is UTF-16 order.

func (e *encoder) plan(p *Plan) {
	e.buf = append(e.buf, '{')
	first := true
	e.key(&first, "apiVersion")
	e.str(p.APIVersion)
	if len(p.Dependencies) > 0 {
		e.key(&first, "dependencies")
		e.array(len(p.Dependencies), func(i int) { e.dependency(&p.Dependencies[i]) })
	}
	if len(p.Params) > 0 {
		e.key(&first, "params")
		e.params(p.Params)
	}
	e.key(&first, "source")
	e.buf = append(e.buf, `{"digest":`...)
	e.str(p.Source.Digest)
	e.buf = append(e.buf, `,"size":`...)
	e.int(p.Source.Size)
	e.buf = append(e.buf, '}')
	e.key(&first, "stages")
	if p.Stages == nil {
		e.buf = append(e.buf, "null"...)
	} else {
		e.array(len(p.Stages), func(i int) { e.strs(p.Stages[i]) })
	}
	e.key(&first, "steps")
	if p.Steps == nil {
		e.buf = append(e.buf, "null"...)
	} else {
		e.buf = append(e.buf, '[')
		for i := range p.Steps {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			e.step(&p.Steps[i])
			if e.err != nil {
				return
			}
		}
		e.buf = append(e.buf, ']')
	}
	e.key(&first, "workflow")
	w := &p.Workflow
	e.buf = append(e.buf, '{')
	first = true
	if w.Description != "" {
		e.key(&first, "description")
		e.str(w.Description)
	}
	if len(w.Labels) > 0 {
		e.key(&first, "labels")
		e.strMap(w.Labels)
	}
	e.key(&first, "name")
	e.str(w.Name)
	e.key(&first, "version")
	e.str(w.Version)
	e.buf = append(e.buf, "}}"...)
}

func (e *encoder) params(ps []Param) {
	e.buf = append(e.buf, '[')
	for i := range ps {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		prm := &ps[i]
		e.buf = append(e.buf, '{')
		first := true
		if prm.Default != nil {
			e.key(&first, "default")
			e.value(prm.Default)
		}
		if prm.Description != "" {
			e.key(&first, "description")
			e.str(prm.Description)
		}
		if len(prm.Enum) > 0 {
			e.key(&first, "enum")
			e.array(len(prm.Enum), func(j int) { e.value(prm.Enum[j]) })
		}
		e.key(&first, "name")
		e.str(prm.Name)
		if prm.Required {
			e.key(&first, "required")
			e.buf = append(e.buf, "true"...)
		}
		e.key(&first, "type")
		e.str(prm.Type)
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, ']')
}

func (e *encoder) dependency(d *Dependency) {
	e.buf = append(e.buf, `{"digest":`...)
	e.str(d.Digest)
	e.buf = append(e.buf, `,"kind":`...)
	e.str(string(d.Kind))
	e.buf = append(e.buf, `,"pinned":`...)
	e.str(d.Pinned)
	e.buf = append(e.buf, `,"ref":`...)
	e.str(d.Ref)
	if w := d.Workflow; w != nil {
		e.buf = append(e.buf, `,"workflow":{"name":`...)
		e.str(w.Name)
		if len(w.Params) > 0 {
			e.buf = append(e.buf, `,"params":`...)
			e.params(w.Params)
		}
		e.buf = append(e.buf, `,"version":`...)
		e.str(w.Version)
		e.buf = append(e.buf, '}')
	}
	e.buf = append(e.buf, '}')
}

func (e *encoder) step(st *Step) {
	e.buf = append(e.buf, '{')
	first := true
	if len(st.Args) > 0 {
		e.key(&first, "args")
		e.strs(st.Args)
	}
	if len(st.Env) > 0 {
		e.key(&first, "env")
		e.strMap(st.Env)
	}
	e.key(&first, "id")
	e.str(st.ID)
	if st.Image != "" {
		e.key(&first, "image")
		e.str(st.Image)
	}
	if len(st.Needs) > 0 {
		e.key(&first, "needs")
		e.strs(st.Needs)
	}
	if len(st.Outputs) > 0 {
		e.key(&first, "outputs")
		e.buf = append(e.buf, '[')
		for i := range st.Outputs {
			if i > 0 {
				e.buf = append(e.buf, ',')
			}
			o := &st.Outputs[i]
			e.buf = append(e.buf, '{')
			of := true
			if o.Description != "" {
				e.key(&of, "description")
				e.str(o.Description)
			}
			e.key(&of, "name")
			e.str(o.Name)
			e.key(&of, "type")
			e.str(o.Type)
			e.buf = append(e.buf, '}')
		}
		e.buf = append(e.buf, ']')
	}
	if st.Retries != 0 {
		e.key(&first, "retries")
		e.int(int64(st.Retries))
	}
	if st.Run != "" {
		e.key(&first, "run")
		e.str(st.Run)
	}
	e.key(&first, "stage")
	e.int(int64(st.Stage))
	if st.Timeout != "" {
		e.key(&first, "timeout")
		e.str(st.Timeout)
	}
	if st.Uses != "" {
		e.key(&first, "uses")
		e.str(st.Uses)
	}
	if st.When != nil {
		e.key(&first, "when")
		e.buf = append(e.buf, `{"expr":`...)
		e.str(st.When.Expr)
		if len(st.When.Vars) > 0 {
			e.buf = append(e.buf, `,"vars":`...)
			e.strs(st.When.Vars)
		}
		e.buf = append(e.buf, '}')
	}
	if len(st.With) > 0 {
		e.key(&first, "with")
		e.strMap(st.With)
	}
	e.buf = append(e.buf, '}')
}
