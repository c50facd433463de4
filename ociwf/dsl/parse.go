package dsl

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Parse reads one workflow document from src and validates it. file names the
// source in error messages. The returned error, if any, is an ErrorList.
func Parse(file string, src []byte) (*Workflow, error) {
	return parse(file, src, ParseOptions{})
}

func parse(file string, src []byte, opts ParseOptions) (*Workflow, error) {
	p := &parser{file: file, budget: MaxNodes, conds: opts.Conditions}
	wf := p.parse(src)
	if wf != nil {
		wf.File = file
	}
	if len(p.errs) == 0 {
		validate(p, wf)
	}
	if len(p.errs) > 0 {
		p.errs.Sort()
		if len(p.errs) > MaxErrors {
			p.errs = p.errs[:MaxErrors]
		}
		return nil, p.errs
	}
	return wf, nil
}

type parser struct {
	file   string
	errs   ErrorList
	budget int
	halted bool
	// conds, if set, keeps condition outcomes across parses.
	conds *Conditions
}

// errTooMany stops the walk once MaxErrors is reached.
func (p *parser) errorAt(pos Pos, format string, args ...any) {
	if p.halted {
		return
	}
	p.errs = append(p.errs, &Error{File: p.file, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf(format, args...)})
	if len(p.errs) > MaxErrors {
		p.halted = true
	}
}

func (p *parser) errorf(n *yaml.Node, format string, args ...any) {
	p.errorAt(posOf(n), format, args...)
}

func posOf(n *yaml.Node) Pos { return Pos{Line: n.Line, Column: n.Column} }

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func (p *parser) parse(src []byte) *Workflow {
	if len(src) > MaxSourceBytes {
		p.errorAt(Pos{}, "workflow is %d bytes; the limit is %d bytes (4 MiB)", len(src), MaxSourceBytes)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(src))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.errorAt(Pos{}, "empty workflow: expected one YAML document")
			return nil
		}
		p.yamlError(err)
		return nil
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		p.errorAt(Pos{Line: extra.Line, Column: extra.Column}, "more than one YAML document; a workflow file holds exactly one")
		return nil
	} else if !errors.Is(err, io.EOF) {
		p.yamlError(err)
		return nil
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		p.errorAt(Pos{}, "empty workflow: expected one YAML document")
		return nil
	}
	root := doc.Content[0]
	if deep := tooDeep(root, 0); deep != nil {
		p.errorf(deep, "YAML nesting is deeper than %d levels", MaxDepth)
		return nil
	}
	wf := &Workflow{}
	p.workflow(root, wf)
	return wf
}

func (p *parser) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if m := yamlLineRE.FindStringSubmatch(err.Error()); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.errs = append(p.errs, &Error{File: p.file, Line: line, Column: 1, Msg: "invalid YAML: " + m[2]})
		return
	}
	p.errorAt(Pos{}, "invalid YAML: %s", msg)
}

// tooDeep returns the first node nested deeper than MaxDepth, without
// following aliases (aliases are bounded by the node budget instead).
func tooDeep(n *yaml.Node, d int) *yaml.Node {
	if d > MaxDepth {
		return n
	}
	for _, c := range n.Content {
		if deep := tooDeep(c, d+1); deep != nil {
			return deep
		}
	}
	return nil
}

// node follows aliases and charges the node budget, so an alias bomb is
// rejected after a bounded amount of work instead of being expanded.
func (p *parser) node(n *yaml.Node) *yaml.Node {
	for hops := 0; n.Kind == yaml.AliasNode; hops++ {
		if n.Alias == nil || hops > MaxDepth {
			p.errorf(n, "unresolvable YAML alias")
			return nil
		}
		n = n.Alias
	}
	p.budget -= 1 + len(n.Content)
	if p.budget < 0 {
		if !p.halted {
			p.errorf(n, "document expands to more than %d YAML nodes (alias bomb?)", MaxNodes)
			p.halted = true
		}
		return nil
	}
	return n
}

// fields walks a mapping, calling set for each known key in source order.
// Unknown and duplicate keys are errors.
func (p *parser) fields(n *yaml.Node, what string, known []string, set func(key string, v *yaml.Node)) bool {
	return p.fieldsf(n, func() string { return what }, known, set)
}

// fieldsf is fields with what built only for an error.
func (p *parser) fieldsf(n *yaml.Node, what func() string, known []string, set func(key string, v *yaml.Node)) bool {
	if n = p.node(n); n == nil {
		return false
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what())
		return false
	}
	seen := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !p.halted; i += 2 {
		k := p.node(n.Content[i])
		if k == nil {
			return false
		}
		if k.Kind != yaml.ScalarNode {
			p.errorf(k, "%s: keys must be strings", what())
			continue
		}
		if line, dup := seen[k.Value]; dup {
			p.errorf(k, "duplicate key %q in %s (first at line %d)", k.Value, what(), line)
			continue
		}
		seen[k.Value] = k.Line
		if !slices.Contains(known, k.Value) {
			p.errorf(k, "unknown field %q in %s (allowed: %s)", k.Value, what(), strings.Join(known, ", "))
			continue
		}
		set(k.Value, n.Content[i+1])
	}
	return true
}

func (p *parser) str(n *yaml.Node, what string) (string, bool) {
	return p.strf(n, func() string { return what })
}

// strf is str with what built only for an error.
func (p *parser) strf(n *yaml.Node, what func() string) (string, bool) {
	if n = p.node(n); n == nil {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" || n.Tag == "!!binary" {
		p.errorf(n, "%s must be a string", what())
		return "", false
	}
	return n.Value, true
}

func (p *parser) integer(n *yaml.Node, what string) (int64, bool) {
	if n = p.node(n); n == nil {
		return 0, false
	}
	var v int64
	if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&v) != nil {
		p.errorf(n, "%s must be an integer", what)
		return 0, false
	}
	return v, true
}

func (p *parser) boolean(n *yaml.Node, what string) (bool, bool) {
	if n = p.node(n); n == nil {
		return false, false
	}
	var v bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&v) != nil {
		p.errorf(n, "%s must be true or false", what)
		return false, false
	}
	return v, true
}

func (p *parser) seq(n *yaml.Node, what string) []*yaml.Node {
	return p.seqf(n, func() string { return what })
}

// seqf is seq with what built only for an error.
func (p *parser) seqf(n *yaml.Node, what func() string) []*yaml.Node {
	if n = p.node(n); n == nil {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, "%s must be a list", what())
		return nil
	}
	return n.Content
}

func (p *parser) strList(n *yaml.Node, what string) []string {
	return p.strListf(n, func() string { return what })
}

// strListf is strList with what built only for an error.
func (p *parser) strListf(n *yaml.Node, what func() string) []string {
	items := p.seqf(n, what)
	out := make([]string, 0, len(items))
	for i, it := range items {
		if s, ok := p.strf(it, func() string { return fmt.Sprintf("%s[%d]", what(), i) }); ok {
			out = append(out, s)
		}
	}
	return out
}

// strMap reads a mapping of string keys to scalar values, checking keys
// against keyRE when it is not nil.
func (p *parser) strMap(n *yaml.Node, what string, keyRE *regexp.Regexp, keyRule string) map[string]string {
	return p.strMapAt(n, what, keyRE, keyRule, nil, nil)
}

// strMapAt is strMap that also records where each key and value is, in
// keys and values when they are not nil.
func (p *parser) strMapAt(n *yaml.Node, what string, keyRE *regexp.Regexp, keyRule string, keys, values map[string]Pos) map[string]string {
	if n = p.node(n); n == nil {
		return nil
	}
	if n.Kind != yaml.MappingNode {
		p.errorf(n, "%s must be a mapping", what)
		return nil
	}
	out := make(map[string]string, len(n.Content)/2)
	lines := make(map[string]int, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content) && !p.halted; i += 2 {
		k := p.node(n.Content[i])
		if k == nil {
			return out
		}
		key, ok := p.str(k, what+" key")
		if !ok {
			continue
		}
		if line, dup := lines[key]; dup {
			p.errorf(k, "duplicate key %q in %s (first at line %d)", key, what, line)
			continue
		}
		lines[key] = k.Line
		if keyRE != nil && !keyRE.MatchString(key) {
			p.errorf(k, "%s key %q: %s", what, key, keyRule)
			continue
		}
		if v, ok := p.str(n.Content[i+1], fmt.Sprintf("%s.%s", what, key)); ok {
			out[key] = v
			if keys != nil {
				keys[key] = posOf(k)
				values[key] = posOf(n.Content[i+1])
			}
		}
	}
	return out
}

var (
	nameRE  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	identRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]{0,62}$`)
	// semverRE is semantic versioning 2.0.0 with an optional leading "v".
	semverRE   = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-((?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*))?(?:\+([0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?$`)
	labelKeyRE = regexp.MustCompile(`^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$`)
	envKeyRE   = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

const identRule = "must start with a letter or underscore and hold only letters, digits and underscores (at most 63)"

// matching reads a string field whose value must match re; rule says what
// a mismatch breaks, after "what "value"".
func (p *parser) matching(v *yaml.Node, what string, re *regexp.Regexp, rule string) string {
	s, ok := p.str(v, what)
	if ok && !re.MatchString(s) {
		p.errorf(v, "%s %q %s", what, s, rule)
	}
	return s
}

// ident reads a field whose value must be an identifier; kind names it in
// the error ("step id").
func (p *parser) ident(v *yaml.Node, what, kind string) string {
	return p.identf(v, func() string { return what }, kind)
}

// identf is ident with what built only for an error.
func (p *parser) identf(v *yaml.Node, what func() string, kind string) string {
	s, ok := p.strf(v, what)
	if ok && !identRE.MatchString(s) {
		p.errorf(v, "%s %q %s", kind, s, identRule)
	}
	return s
}

func (p *parser) workflow(n *yaml.Node, wf *Workflow) {
	var sawAPI, sawKind, sawMeta, sawSteps bool
	ok := p.fields(n, "workflow", []string{"apiVersion", "kind", "metadata", "params", "steps"}, func(key string, v *yaml.Node) {
		switch key {
		case "apiVersion":
			sawAPI = true
			if s, ok := p.str(v, "apiVersion"); ok && s != APIVersion {
				p.errorf(v, "unsupported apiVersion %q; use %q", s, APIVersion)
			}
			wf.APIVersion = APIVersion
		case "kind":
			sawKind = true
			if s, ok := p.str(v, "kind"); ok && s != Kind {
				p.errorf(v, "unsupported kind %q; use %q", s, Kind)
			}
			wf.Kind = Kind
		case "metadata":
			sawMeta = true
			p.metadata(v, &wf.Metadata)
		case "params":
			for i, it := range p.seq(v, "params") {
				wf.Params = append(wf.Params, p.param(it, i))
			}
		case "steps":
			sawSteps = true
			items := p.seq(v, "steps")
			if len(items) > MaxSteps {
				p.errorf(v, "%d steps; the limit is %d", len(items), MaxSteps)
				return
			}
			wf.Steps = make([]Step, 0, len(items))
			for i, it := range items {
				wf.Steps = append(wf.Steps, p.step(it, i))
			}
		}
	})
	if !ok {
		return
	}
	for _, req := range []struct {
		saw  bool
		name string
	}{{sawAPI, "apiVersion"}, {sawKind, "kind"}, {sawMeta, "metadata"}, {sawSteps, "steps"}} {
		if !req.saw {
			p.errorf(n, "missing required field %q", req.name)
		}
	}
}

func (p *parser) metadata(n *yaml.Node, m *Metadata) {
	var sawName, sawVersion bool
	if !p.fields(n, "metadata", []string{"name", "version", "description", "labels"}, func(key string, v *yaml.Node) {
		switch key {
		case "name":
			sawName = true
			m.Name = p.matching(v, "metadata.name", nameRE, "must be lower-case letters, digits and '-', starting and ending with a letter or digit (at most 63)")
		case "version":
			sawVersion = true
			m.Version = p.matching(v, "metadata.version", semverRE, "is not a semantic version (MAJOR.MINOR.PATCH[-pre][+build])")
		case "description":
			m.Description, _ = p.str(v, "metadata.description")
		case "labels":
			m.Labels = p.strMap(v, "metadata.labels", labelKeyRE, "must be a label key such as team or example.com/team")
		}
	}) {
		return
	}
	if !sawName {
		p.errorf(n, "missing required field %q", "metadata.name")
	}
	if !sawVersion {
		p.errorf(n, "missing required field %q", "metadata.version")
	}
}

func (p *parser) typ(n *yaml.Node, what string) Type {
	s, ok := p.str(n, what)
	if !ok {
		return ""
	}
	switch t := Type(s); t {
	case TypeString, TypeInt, TypeBool, TypeList:
		return t
	}
	p.errorf(n, "%s %q is not one of string, int, bool, list", what, s)
	return ""
}

func (p *parser) param(n *yaml.Node, i int) Param {
	what := fmt.Sprintf("params[%d]", i)
	prm := Param{Pos: posOf(n)}
	var defNode, enumNode *yaml.Node
	if !p.fields(n, what, []string{"name", "type", "default", "enum", "required", "description"}, func(key string, v *yaml.Node) {
		switch key {
		case "name":
			prm.Name = p.ident(v, what+".name", "param name")
		case "type":
			prm.Type = p.typ(v, what+".type")
		case "default":
			defNode = v
		case "enum":
			enumNode = v
		case "required":
			prm.Required, _ = p.boolean(v, what+".required")
		case "description":
			prm.Description, _ = p.str(v, what+".description")
		}
	}) {
		return prm
	}
	if prm.Name == "" {
		p.errorf(n, "%s: missing required field %q", what, "name")
		return prm
	}
	if prm.Type == "" {
		if !hasKey(n, "type") {
			p.errorf(n, "param %q: missing required field %q", prm.Name, "type")
		}
		return prm
	}
	if enumNode != nil {
		if prm.Type == TypeList {
			p.errorf(enumNode, "param %q: enum is not allowed on a list param", prm.Name)
		} else {
			for _, it := range p.seq(enumNode, "enum") {
				if v, ok := p.value(it, prm.Type, fmt.Sprintf("param %q enum value", prm.Name)); ok {
					prm.Enum = append(prm.Enum, v)
				}
			}
		}
	}
	if defNode != nil {
		if prm.Required {
			p.errorf(defNode, "param %q: a required param cannot have a default", prm.Name)
		} else if v, ok := p.value(defNode, prm.Type, fmt.Sprintf("param %q default", prm.Name)); ok {
			prm.Default = v
			if len(prm.Enum) > 0 && !slices.Contains(prm.Enum, v) {
				p.errorf(defNode, "param %q: default %v is not in its enum", prm.Name, v)
			}
		}
	}
	return prm
}

// keyPos returns the position of key in mapping n, or that of its value v
// when n does not hold it directly (n is an alias).
func keyPos(n *yaml.Node, key string, v *yaml.Node) Pos {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key && n.Content[i+1] == v {
			return posOf(n.Content[i])
		}
	}
	return posOf(v)
}

func hasKey(n *yaml.Node, key string) bool {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return true
		}
	}
	return false
}

// value reads a literal of type t.
func (p *parser) value(n *yaml.Node, t Type, what string) (any, bool) {
	switch t {
	case TypeString:
		return p.str(n, what)
	case TypeInt:
		return p.integer(n, what)
	case TypeBool:
		return p.boolean(n, what)
	case TypeList:
		if m := p.node(n); m != nil && m.Kind != yaml.SequenceNode {
			p.errorf(n, "%s must be a list of strings", what)
			return nil, false
		}
		return p.strList(n, what), true
	}
	return nil, false
}

var stepFields = []string{"id", "image", "uses", "with", "run", "args", "env", "needs", "when", "retries", "timeout", "outputs"}

// MaxRetries and MaxTimeout bound a step's retry count and timeout.
const (
	MaxRetries = 100
	MaxTimeout = 7 * 24 * time.Hour
)

func (p *parser) step(n *yaml.Node, i int) Step {
	// what names the step in errors; it is built only for one.
	what := func() string { return fmt.Sprintf("steps[%d]", i) }
	st := Step{Pos: posOf(n)}
	var withNode *yaml.Node
	p.fieldsf(n, what, stepFields, func(key string, v *yaml.Node) {
		switch key {
		case "id":
			st.ID = p.identf(v, func() string { return what() + ".id" }, "step id")
		case "image":
			st.Image, _ = p.strf(v, func() string { return what() + ".image" })
			st.ImagePos = posOf(v)
		case "uses":
			st.Uses, _ = p.strf(v, func() string { return what() + ".uses" })
			st.ImagePos = posOf(v)
		case "with":
			withNode = v
			st.WithPos = keyPos(n, "with", v)
			st.WithKeys, st.WithValues = map[string]Pos{}, map[string]Pos{}
			st.With = p.strMapAt(v, what()+".with", identRE, identRule, st.WithKeys, st.WithValues)
		case "run":
			st.Run, _ = p.strf(v, func() string { return what() + ".run" })
		case "args":
			st.Args = p.strListf(v, func() string { return what() + ".args" })
		case "env":
			st.Env = p.strMap(v, what()+".env", envKeyRE, "must be an environment variable name")
		case "needs":
			st.Needs = p.strListf(v, func() string { return what() + ".needs" })
		case "when":
			st.When, _ = p.strf(v, func() string { return what() + ".when" })
			st.WhenPos = posOf(v)
		case "retries":
			if r, ok := p.integer(v, what()+".retries"); ok {
				if r < 0 || r > MaxRetries {
					p.errorf(v, "%s.retries %d is outside 0..%d", what(), r, MaxRetries)
				}
				st.Retries = int(r)
			}
		case "timeout":
			if s, ok := p.strf(v, func() string { return what() + ".timeout" }); ok {
				d, err := time.ParseDuration(s)
				switch {
				case err != nil:
					p.errorf(v, "%s.timeout %q is not a duration such as 90s or 10m", what(), s)
				case d <= 0 || d > MaxTimeout:
					p.errorf(v, "%s.timeout %s is outside (0s, 168h]", what(), s)
				}
				st.Timeout = d
			}
		case "outputs":
			for j, it := range p.seqf(v, func() string { return what() + ".outputs" }) {
				st.Outputs = append(st.Outputs, p.output(it, fmt.Sprintf("%s.outputs[%d]", what(), j)))
			}
		}
	})
	if st.ID == "" && !hasKey(n, "id") && n.Kind == yaml.MappingNode {
		p.errorf(n, "%s: missing required field %q", what(), "id")
	}
	if withNode != nil && st.Uses == "" {
		p.errorf(withNode, "step %q: with is only allowed together with uses", st.ID)
	}
	return st
}

func (p *parser) output(n *yaml.Node, what string) Output {
	var o Output
	p.fields(n, what, []string{"name", "type", "description"}, func(key string, v *yaml.Node) {
		switch key {
		case "name":
			o.Name = p.ident(v, what+".name", "output name")
		case "type":
			o.Type = p.typ(v, what+".type")
		case "description":
			o.Description, _ = p.str(v, what+".description")
		}
	})
	if n.Kind == yaml.MappingNode {
		if o.Name == "" && !hasKey(n, "name") {
			p.errorf(n, "%s: missing required field %q", what, "name")
		}
		if o.Type == "" && !hasKey(n, "type") {
			o.Type = TypeString
		}
	}
	return o
}
