package plan

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
)

var (
	decimalRE = regexp.MustCompile(`^-?(0|[1-9][0-9]*)$`)
	identRE   = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)
)

// ParseValue reads the string form of a value of type typ, the form with
// values and step outputs take (see docs/dsl.md, "The runtime contract"):
// a string as it is; an int in decimal without a sign other than a leading
// '-' and without leading zeros; a bool as exactly true or false; a list as
// a JSON array of strings. It returns a string, int64, bool or []string.
// Errors wrap errdef.ErrInvalid.
func ParseValue(typ, s string) (any, error) {
	v, problem := parseValue(typ, s)
	if problem != "" {
		return nil, fmt.Errorf("%s: %w", problem, errdef.ErrInvalid)
	}
	return v, nil
}

// parseValue is ParseValue with the problem as a message.
func parseValue(typ, s string) (any, string) {
	switch dsl.Type(typ) {
	case dsl.TypeString:
		return s, ""
	case dsl.TypeInt:
		if !decimalRE.MatchString(s) {
			return nil, fmt.Sprintf("%q is not an int (a decimal integer such as 42)", s)
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Sprintf("%q is outside the int range (64 bits)", s)
		}
		return n, ""
	case dsl.TypeBool:
		switch s {
		case "true":
			return true, ""
		case "false":
			return false, ""
		}
		return nil, fmt.Sprintf("%q is not a bool (true or false)", s)
	case dsl.TypeList:
		var l []string
		if !strings.HasPrefix(strings.TrimSpace(s), "[") || json.Unmarshal([]byte(s), &l) != nil {
			return nil, fmt.Sprintf("%q is not a list (a JSON array of strings such as [\"a\", \"b\"])", s)
		}
		if l == nil {
			l = []string{}
		}
		return l, ""
	}
	return nil, fmt.Sprintf("unknown type %q", typ)
}

// BindParams binds string values to params, as an engine does for the
// params of a run and for the with of a step that uses a sub-workflow (with
// the sub-workflow's params, Dependency.Workflow.Params or its own plan's):
// every value must name a param and parse as its type (ParseValue) and be
// one of its enum, if it has one; every required param must have a value; a
// param without a value takes its default, or the zero value of its type
// ("", 0, false, an empty list) when it has none. It returns the typed value
// of every param by name. Errors wrap errdef.ErrInvalid.
func BindParams(params []Param, values map[string]string) (map[string]any, error) {
	bound, probs := bindParams(params, values)
	if len(probs) > 0 {
		msgs := make([]string, len(probs))
		for i, pr := range probs {
			msgs[i] = pr.String()
		}
		return nil, fmt.Errorf("bind params: %s: %w", strings.Join(msgs, "; "), errdef.ErrInvalid)
	}
	return bound, nil
}

// problemKind says which part of a binding a problem is about, so the
// compiler can point at the with key or at its value.
type problemKind int

const (
	problemUnknown problemKind = iota // the value names no param
	problemValue                      // the value does not parse as the param's type
	problemEnum                       // the value is not in the param's enum
	problemMissing                    // a required param has no value
)

type bindProblem struct {
	kind  problemKind
	param string
	msg   string
}

func (p bindProblem) String() string {
	switch p.kind {
	case problemUnknown:
		return fmt.Sprintf("no param %q", p.param)
	case problemMissing:
		return fmt.Sprintf("param %q is required", p.param)
	}
	return fmt.Sprintf("param %s: %s", p.param, p.msg)
}

func bindParams(params []Param, values map[string]string) (map[string]any, []bindProblem) {
	byName := make(map[string]*Param, len(params))
	for i := range params {
		byName[params[i].Name] = &params[i]
	}
	names := make([]string, 0, len(values))
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	var probs []bindProblem
	bound := make(map[string]any, len(params))
	for _, name := range names {
		prm, ok := byName[name]
		if !ok {
			probs = append(probs, bindProblem{kind: problemUnknown, param: name})
			continue
		}
		v, problem := parseValue(prm.Type, values[name])
		if problem != "" {
			probs = append(probs, bindProblem{kind: problemValue, param: name, msg: problem})
			continue
		}
		if len(prm.Enum) > 0 && !slices.Contains(prm.Enum, v) {
			allowed := make([]string, len(prm.Enum))
			for i, e := range prm.Enum {
				allowed[i] = literal(e)
			}
			probs = append(probs, bindProblem{kind: problemEnum, param: name, msg: fmt.Sprintf("%s is not one of %s", literal(v), strings.Join(allowed, ", "))})
			continue
		}
		bound[name] = v
	}
	for _, prm := range params {
		if _, ok := values[prm.Name]; ok {
			continue
		}
		switch {
		case prm.Required:
			probs = append(probs, bindProblem{kind: problemMissing, param: prm.Name})
		case prm.Default != nil:
			bound[prm.Name] = clone(prm.Default)
		default:
			bound[prm.Name] = zero(prm.Type)
		}
	}
	return bound, probs
}

// literal formats a value as the DSL writes it: strings quoted.
func literal(v any) string {
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	return fmt.Sprint(v)
}

func clone(v any) any {
	if l, ok := v.([]string); ok {
		return slices.Clone(l)
	}
	return v
}

func zero(typ string) any {
	switch dsl.Type(typ) {
	case dsl.TypeInt:
		return int64(0)
	case dsl.TypeBool:
		return false
	case dsl.TypeList:
		return []string{}
	}
	return ""
}

// hasType reports whether v is a Go value of type typ, as ParseValue returns
// it.
func hasType(typ string, v any) bool {
	switch v.(type) {
	case string:
		return typ == string(dsl.TypeString)
	case int64:
		return typ == string(dsl.TypeInt)
	case bool:
		return typ == string(dsl.TypeBool)
	case []string:
		return typ == string(dsl.TypeList)
	}
	return false
}

func knownType(typ string) bool {
	switch dsl.Type(typ) {
	case dsl.TypeString, dsl.TypeInt, dsl.TypeBool, dsl.TypeList:
		return true
	}
	return false
}

// checkParams checks a param schema as the DSL enforces it: unique
// identifier names, known types, defaults and enums of the param's type.
func checkParams(params []Param) error {
	seen := make(map[string]bool, len(params))
	for _, prm := range params {
		if !identRE.MatchString(prm.Name) || seen[prm.Name] {
			return invalid("param %q: a missing, malformed or repeated name", prm.Name)
		}
		seen[prm.Name] = true
		if !knownType(prm.Type) {
			return invalid("param %q has unknown type %q", prm.Name, prm.Type)
		}
		if prm.Default != nil && (prm.Required || !hasType(prm.Type, prm.Default)) {
			return invalid("param %q: a default on a required param, or not of type %s", prm.Name, prm.Type)
		}
		for _, e := range prm.Enum {
			if prm.Type == string(dsl.TypeList) || !hasType(prm.Type, e) {
				return invalid("param %q: enum value %v is not of type %s", prm.Name, e, prm.Type)
			}
		}
		if prm.Default != nil && len(prm.Enum) > 0 && !slices.Contains(prm.Enum, prm.Default) {
			return invalid("param %q: default is not in its enum", prm.Name)
		}
	}
	return nil
}
