package plan

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"cel.dev/cel-go/cel"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
)

// MaxConditionCost bounds the work one evaluation of a condition may do, in
// CEL's cost units; a condition over it fails instead of running long.
const MaxConditionCost = 1_000_000

// ConditionVars returns the variables the conditions of p may read, with
// their types: params.NAME for every param and steps.ID.outputs.NAME for
// every step output, sorted by name. A step's condition reads only the
// variables its When.Vars lists.
func (p *Plan) ConditionVars() []dsl.Var {
	var vars []dsl.Var
	for _, prm := range p.Params {
		vars = append(vars, dsl.Var{Name: dsl.ParamVar(prm.Name), Type: dsl.Type(prm.Type)})
	}
	for _, st := range p.Steps {
		for _, o := range st.Outputs {
			vars = append(vars, dsl.Var{Name: dsl.OutputVar(st.ID, o.Name), Type: dsl.Type(o.Type)})
		}
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].Name < vars[j].Name })
	return vars
}

// Conditions evaluates the conditions of one plan. It is safe for
// concurrent use.
type Conditions struct {
	env   *cel.Env
	types map[string]string // variable name -> type
	steps map[string]*condition
}

type condition struct {
	step string
	vars []string
	prg  cel.Program // nil: the step has no condition
}

// Conditions compiles every condition of p in the CEL environment the
// compiler checked it in (dsl.NewConditionEnv over p.ConditionVars()),
// checking again that each is a bool and reads exactly the variables its
// When.Vars lists. A plan that fails this was not compiled by ociwf, or
// was changed since: the error wraps errdef.ErrInvalid.
func (p *Plan) Conditions() (*Conditions, error) {
	vars := p.ConditionVars()
	env, err := dsl.NewConditionEnv(vars)
	if err != nil {
		return nil, fmt.Errorf("plan conditions: %w", err)
	}
	c := &Conditions{env: env, types: make(map[string]string, len(vars)), steps: make(map[string]*condition, len(p.Steps))}
	for _, v := range vars {
		c.types[v.Name] = string(v.Type)
	}
	for _, st := range p.Steps {
		cond := &condition{step: st.ID}
		c.steps[st.ID] = cond
		if st.When == nil {
			continue
		}
		ast, reads, err := dsl.CompileCondition(env, st.When.Expr)
		if err != nil {
			return nil, fmt.Errorf("step %q: %w", st.ID, err)
		}
		if !slices.Equal(reads, st.When.Vars) {
			return nil, invalid("step %q: the condition reads %v, the plan lists %v", st.ID, reads, st.When.Vars)
		}
		prg, err := env.Program(ast, cel.CostLimit(MaxConditionCost), cel.InterruptCheckFrequency(100))
		if err != nil {
			return nil, fmt.Errorf("step %q: condition: %v: %w", st.ID, err, errdef.ErrInvalid)
		}
		cond.vars, cond.prg = reads, prg
	}
	return c, nil
}

// Env returns the CEL environment of the plan's conditions, with every
// variable of ConditionVars declared.
func (c *Conditions) Env() *cel.Env { return c.env }

// Values are what a condition reads at run time.
type Values struct {
	// Params holds the typed value of every param by name, as BindParams
	// returns them.
	Params map[string]any
	// Outputs holds, by step id, the typed outputs of every step that ran,
	// as Step.ParseOutputs returns them. A step that was skipped or has not
	// run has none.
	Outputs map[string]map[string]any
}

// UnsetError reports a variable a condition reads that has no value: a
// param the caller did not bind, or an output of a step that was skipped or
// has not run.
type UnsetError struct {
	// Step is the step whose condition reads the variable.
	Step string
	// Var is the variable, params.NAME or steps.ID.outputs.NAME.
	Var string
}

// Error says which variable is unset.
func (e *UnsetError) Error() string {
	return fmt.Sprintf("step %q: condition reads %s, which has no value", e.Step, e.Var)
}

// Eval reports whether step runs: true when it has no condition, else the
// value of its condition over v. Every variable the condition reads must
// have a value (else *UnsetError) of its declared type as ParseValue
// returns it: string, int64, bool or []string (else an error wrapping
// errdef.ErrInvalid). An unknown step is errdef.ErrInvalid too.
func (c *Conditions) Eval(ctx context.Context, step string, v Values) (bool, error) {
	cond, ok := c.steps[step]
	if !ok {
		return false, fmt.Errorf("the plan has no step %q: %w", step, errdef.ErrInvalid)
	}
	if cond.prg == nil {
		return true, nil
	}
	act := make(map[string]any, len(cond.vars))
	for _, name := range cond.vars {
		val, ok := lookup(v, name)
		if !ok {
			return false, &UnsetError{Step: step, Var: name}
		}
		if !hasType(c.types[name], val) {
			return false, fmt.Errorf("step %q: condition reads %s, a %s, but its value is a %T: %w", step, name, c.types[name], val, errdef.ErrInvalid)
		}
		act[name] = val
	}
	out, _, err := cond.prg.ContextEval(ctx, act)
	if err != nil {
		return false, fmt.Errorf("step %q: evaluate condition: %w", step, err)
	}
	b, ok := out.Value().(bool)
	if !ok {
		return false, fmt.Errorf("step %q: condition gave %v, not a bool: %w", step, out, errdef.ErrInvalid)
	}
	return b, nil
}

// lookup finds the value of variable name (params.NAME or
// steps.ID.outputs.NAME) in v.
func lookup(v Values, name string) (any, bool) {
	if p, ok := strings.CutPrefix(name, "params."); ok {
		val, ok := v.Params[p]
		return val, ok
	}
	rest, _ := strings.CutPrefix(name, "steps.")
	id, out, ok := strings.Cut(rest, ".outputs.")
	if !ok {
		return nil, false
	}
	val, ok := v.Outputs[id][out]
	return val, ok
}

// ParseOutputs turns the raw outputs a step emitted (see docs/dsl.md, "The
// runtime contract") into typed values: raw must hold exactly the step's
// declared outputs, each parsing as its type (ParseValue). An engine treats
// a step whose outputs do not parse as failed. Errors wrap
// errdef.ErrInvalid.
func (s *Step) ParseOutputs(raw map[string]string) (map[string]any, error) {
	out := make(map[string]any, len(s.Outputs))
	for _, o := range s.Outputs {
		r, ok := raw[o.Name]
		if !ok {
			return nil, fmt.Errorf("step %q did not emit its output %s: %w", s.ID, o.Name, errdef.ErrInvalid)
		}
		v, err := ParseValue(o.Type, r)
		if err != nil {
			return nil, fmt.Errorf("step %q output %s: %w", s.ID, o.Name, err)
		}
		out[o.Name] = v
	}
	if len(raw) > len(out) {
		for name := range raw {
			if _, ok := out[name]; !ok {
				return nil, fmt.Errorf("step %q emitted %q, which it does not declare: %w", s.ID, name, errdef.ErrInvalid)
			}
		}
	}
	return out, nil
}

// OutputsEnv names the environment variable through which an engine tells
// a step where to write its outputs: a directory, empty when the attempt
// starts, in which the step writes one file per declared output, named
// after it.
const OutputsEnv = "OCIWF_OUTPUTS"

// MaxOutputBytes bounds one output file.
const MaxOutputBytes = 1 << 20

// ReadOutputs reads the outputs a step wrote into dir (the directory
// OutputsEnv named): one regular file per declared output, named after
// it, holding the value as ParseValue reads it, with one trailing newline
// ("\n" or "\r\n") removed. A declared output without its file, any other
// entry in dir, or a value that does not parse is an error wrapping
// errdef.ErrInvalid; a file over MaxOutputBytes wraps errdef.ErrTooLarge.
func (s *Step) ReadOutputs(dir string) (map[string]any, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("step %q outputs: %w", s.ID, err)
	}
	raw := make(map[string]string, len(entries))
	for _, e := range entries {
		if !e.Type().IsRegular() || !slices.ContainsFunc(s.Outputs, func(o Output) bool { return o.Name == e.Name() }) {
			return nil, fmt.Errorf("step %q wrote %q, which is not a file of a declared output: %w", s.ID, e.Name(), errdef.ErrInvalid)
		}
		v, err := readOutput(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, fmt.Errorf("step %q output %s: %w", s.ID, e.Name(), err)
		}
		raw[e.Name()] = v
	}
	return s.ParseOutputs(raw)
}

func readOutput(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxOutputBytes+1))
	if err != nil {
		return "", err
	}
	if len(b) > MaxOutputBytes {
		return "", fmt.Errorf("over %d bytes: %w", MaxOutputBytes, errdef.ErrTooLarge)
	}
	v := strings.TrimSuffix(string(b), "\n")
	if len(v) < len(b) {
		v = strings.TrimSuffix(v, "\r")
	}
	return v, nil
}

// Command returns how an engine starts the container of an image step.
// With run, the entrypoint is /bin/sh -c RUN ID: the script, with the step
// id as $0, and args as its positional parameters $1…; without run, the
// entrypoint is nil (the image's own) and args replace the image's command
// (nil: the image's own). run, args and env are passed as they are, with
// no interpolation.
func (s *Step) Command() (entrypoint, args []string) {
	if s.Run != "" {
		entrypoint = []string{"/bin/sh", "-c", s.Run, s.ID}
	}
	return entrypoint, slices.Clone(s.Args)
}
