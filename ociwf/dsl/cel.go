package dsl

import (
	"sort"
	"strings"

	"cel.dev/cel-go/cel"
)

// Limits applied to every condition.
const (
	maxConditionBytes = 4096
	maxConditionDepth = 32
)

func celType(t Type) *cel.Type {
	switch t {
	case TypeInt:
		return cel.IntType
	case TypeBool:
		return cel.BoolType
	case TypeList:
		return cel.ListType(cel.StringType)
	default:
		return cel.StringType
	}
}

// ParamVar and OutputVar name the CEL variables a condition may read.
func ParamVar(name string) string { return "params." + name }

// OutputVar names the CEL variable holding output name of step id.
func OutputVar(step, name string) string { return "steps." + step + ".outputs." + name }

// checkConditions type-checks every when against the declared params and step
// outputs, and requires every step output it reads to come from a step the
// condition's step needs (directly or transitively).
func checkConditions(p *parser, wf *Workflow, index map[string]int, needs [][]int) {
	var any bool
	for i := range wf.Steps {
		if wf.Steps[i].When != "" {
			any = true
			break
		}
	}
	if !any {
		return
	}
	opts := []cel.EnvOption{
		cel.ParserExpressionSizeLimit(maxConditionBytes),
		cel.ParserRecursionLimit(maxConditionDepth),
	}
	for _, prm := range wf.Params {
		if prm.Name != "" && prm.Type != "" {
			opts = append(opts, cel.Variable(ParamVar(prm.Name), celType(prm.Type)))
		}
	}
	for _, st := range wf.Steps {
		for _, o := range st.Outputs {
			if o.Name != "" {
				opts = append(opts, cel.Variable(OutputVar(st.ID, o.Name), celType(o.Type)))
			}
		}
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		p.errorAt(Pos{Line: 1, Column: 1}, "cannot build the condition environment: %v", err)
		return
	}
	for i := range wf.Steps {
		st := &wf.Steps[i]
		if st.When == "" {
			continue
		}
		ast, iss := env.Compile(st.When)
		if iss != nil && iss.Err() != nil {
			msg := oneLine(iss.Err().Error())
			if strings.Contains(msg, "undeclared reference") {
				msg += " (a condition reads params.NAME of a declared param, or steps.ID.outputs.NAME of a declared output)"
			}
			p.errorAt(st.WhenPos, "step %q: invalid condition: %s", st.ID, msg)
			continue
		}
		if !ast.OutputType().IsExactType(cel.BoolType) {
			p.errorAt(st.WhenPos, "step %q: condition must be a bool, not %s", st.ID, ast.OutputType())
			continue
		}
		vars := map[string]bool{}
		for _, r := range ast.NativeRep().ReferenceMap() {
			if strings.HasPrefix(r.Name, "params.") || strings.HasPrefix(r.Name, "steps.") {
				vars[r.Name] = true
			}
		}
		for v := range vars {
			st.WhenVars = append(st.WhenVars, v)
			if rest, ok := strings.CutPrefix(v, "steps."); ok {
				dep, _, _ := strings.Cut(rest, ".")
				if j := index[dep]; j != i && !reachable(needs, i, j) {
					p.errorAt(st.WhenPos, "step %q: condition reads %s, but %q is not among the steps it needs", st.ID, v, dep)
				} else if j == i {
					p.errorAt(st.WhenPos, "step %q: condition reads its own output %s", st.ID, v)
				}
			}
		}
		sort.Strings(st.WhenVars)
	}
}

// oneLine folds CEL's multi-line error report (which draws a caret under the
// problem) into one line.
func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	lines := strings.Split(s, "\n")
	return strings.TrimSpace(lines[0])
}
