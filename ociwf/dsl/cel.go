package dsl

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"

	"ociwf.dev/ociwf/errdef"
)

// Limits applied to every condition.
const (
	// MaxConditionBytes is the longest condition the parser accepts.
	MaxConditionBytes = 4096
	// MaxConditionDepth is the deepest nesting the parser accepts.
	MaxConditionDepth = 32
)

// CELType returns the CEL type of values of t: string, int, bool, or
// list(string) for a list.
func CELType(t Type) *cel.Type {
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

// ParamVar names the CEL variable holding param name.
func ParamVar(name string) string { return "params." + name }

// OutputVar names the CEL variable holding output name of step id.
func OutputVar(step, name string) string { return "steps." + step + ".outputs." + name }

// Var is a variable a condition may read: its CEL name (ParamVar or
// OutputVar) and its type.
type Var struct {
	Name string
	Type Type
}

// NewConditionEnv returns the CEL environment conditions are checked and
// evaluated in: CEL's standard library, the parser limits
// MaxConditionBytes and MaxConditionDepth, and vars, each declared with
// CELType of its type. Nothing else is declared: no macros or functions of
// ociwf's own.
func NewConditionEnv(vars []Var) (*cel.Env, error) {
	opts := []cel.EnvOption{
		cel.ParserExpressionSizeLimit(MaxConditionBytes),
		cel.ParserRecursionLimit(MaxConditionDepth),
	}
	for _, v := range vars {
		opts = append(opts, cel.Variable(v.Name, CELType(v.Type)))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		return nil, fmt.Errorf("condition environment: %w", err)
	}
	return env, nil
}

// ConditionVars returns the variables the conditions of w may read: every
// param and every step output. A condition may read only the outputs of
// the steps it needs; Parse checks that.
func (w *Workflow) ConditionVars() []Var {
	var vars []Var
	for _, prm := range w.Params {
		if prm.Name != "" && prm.Type != "" {
			vars = append(vars, Var{Name: ParamVar(prm.Name), Type: prm.Type})
		}
	}
	for _, st := range w.Steps {
		for _, o := range st.Outputs {
			if o.Name != "" {
				vars = append(vars, Var{Name: OutputVar(st.ID, o.Name), Type: o.Type})
			}
		}
	}
	return vars
}

// CompileCondition parses and type-checks a condition in env (from
// NewConditionEnv). It returns the checked AST, ready for env.Program, and
// the variables the condition reads, sorted. A condition that does not
// compile or is not a bool is an error wrapping errdef.ErrInvalid.
func CompileCondition(env *cel.Env, expr string) (*cel.Ast, []string, error) {
	ast, iss := env.Compile(expr)
	if iss != nil && iss.Err() != nil {
		msg := oneLine(iss.Err().Error())
		if strings.Contains(msg, "undeclared reference") {
			msg += " (a condition reads params.NAME of a declared param, or steps.ID.outputs.NAME of a declared output)"
		}
		return nil, nil, &conditionError{"invalid condition: " + msg}
	}
	if !ast.OutputType().IsExactType(cel.BoolType) {
		return nil, nil, &conditionError{fmt.Sprintf("condition must be a bool, not %s", ast.OutputType())}
	}
	var vars []string
	for _, r := range ast.NativeRep().ReferenceMap() {
		if (strings.HasPrefix(r.Name, "params.") || strings.HasPrefix(r.Name, "steps.")) && !slices.Contains(vars, r.Name) {
			vars = append(vars, r.Name)
		}
	}
	sort.Strings(vars)
	return ast, vars, nil
}

// conditionError is a condition that does not compile; it is
// errdef.ErrInvalid.
type conditionError struct{ msg string }

func (e *conditionError) Error() string { return e.msg }
func (e *conditionError) Unwrap() error { return errdef.ErrInvalid }

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
	// Steps often repeat a condition: compile each text once (and, with
	// shared Conditions, once across parses).
	cc := &conditionCompiler{vars: wf.ConditionVars(), shared: p.conds, seen: map[string]compiledCondition{}}
	for i := range wf.Steps {
		st := &wf.Steps[i]
		if st.When == "" {
			continue
		}
		c, err := cc.compile(st.When)
		if err != nil {
			p.errorAt(Pos{Line: 1, Column: 1}, "cannot build the condition environment: %v", err)
			return
		}
		vars, err := slices.Clone(c.vars), c.err
		if err != nil {
			p.errorAt(st.WhenPos, "step %q: %v", st.ID, err)
			continue
		}
		st.WhenVars = vars
		for _, v := range vars {
			if rest, ok := strings.CutPrefix(v, "steps."); ok {
				dep, _, _ := strings.Cut(rest, ".")
				if j := index[dep]; j != i && !reachable(needs, i, j) {
					p.errorAt(st.WhenPos, "step %q: condition reads %s, but %q is not among the steps it needs", st.ID, v, dep)
				} else if j == i {
					p.errorAt(st.WhenPos, "step %q: condition reads its own output %s", st.ID, v)
				}
			}
		}
	}
}

// oneLine folds CEL's multi-line error report (which draws a caret under the
// problem) into one line.
func oneLine(s string) string {
	s = strings.TrimPrefix(s, "ERROR: <input>:")
	lines := strings.Split(s, "\n")
	return strings.TrimSpace(lines[0])
}
