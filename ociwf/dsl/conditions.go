package dsl

import (
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
)

// DefaultMaxConditions is how many outcomes NewConditions keeps when not
// told.
const DefaultMaxConditions = 1024

// Conditions keeps what compiling conditions found, by condition text and
// the variables declared for it, so that parsing many workflows that
// share conditions (the versions of one workflow, verified one after
// another) type-checks each condition once. It is safe for concurrent use
// and holds at most its capacity; once full, conditions are compiled
// without being kept.
type Conditions struct {
	max int
	mu  sync.Mutex
	m   map[string]compiledCondition
}

// compiledCondition is what CompileCondition found: the variables the
// condition reads, or why it does not compile.
type compiledCondition struct {
	vars []string
	err  error
}

// NewConditions returns a Conditions holding at most max outcomes; max < 1
// means DefaultMaxConditions.
func NewConditions(max int) *Conditions {
	if max < 1 {
		max = DefaultMaxConditions
	}
	return &Conditions{max: max, m: map[string]compiledCondition{}}
}

// Len returns the number of outcomes kept.
func (c *Conditions) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

func (c *Conditions) get(key string) (compiledCondition, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	cc, ok := c.m[key]
	return cc, ok
}

func (c *Conditions) put(key string, cc compiledCondition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) < c.max {
		c.m[key] = cc
	}
}

// conditionKey names a condition under its declared variables: a CEL
// environment is its variables' names and types, nothing else.
func conditionKey(vars []Var, expr string) string {
	var b strings.Builder
	for _, v := range vars {
		b.WriteString(v.Name)
		b.WriteByte(' ')
		b.WriteString(string(v.Type))
		b.WriteByte(0)
	}
	b.WriteByte(0)
	b.WriteString(expr)
	return b.String()
}

// ParseOptions tune ParseWith.
type ParseOptions struct {
	// Conditions, if set, reuses condition outcomes across parses.
	Conditions *Conditions
}

// ParseWith is Parse with opts.
func ParseWith(file string, src []byte, opts ParseOptions) (*Workflow, error) {
	return parse(file, src, opts)
}

// conditionCompiler compiles one workflow's conditions: each text once,
// through the shared Conditions if any, building the CEL environment
// only when a condition must be compiled.
type conditionCompiler struct {
	vars   []Var
	shared *Conditions
	env    *cel.Env
	envErr error
	seen   map[string]compiledCondition
}

// compile returns what compiling expr found; errEnv reports an
// environment that cannot be built.
func (cc *conditionCompiler) compile(expr string) (c compiledCondition, errEnv error) {
	if c, ok := cc.seen[expr]; ok {
		return c, nil
	}
	var key string
	if cc.shared != nil {
		key = conditionKey(cc.vars, expr)
		if c, ok := cc.shared.get(key); ok {
			cc.seen[expr] = c
			return c, nil
		}
	}
	if cc.env == nil && cc.envErr == nil {
		cc.env, cc.envErr = NewConditionEnv(cc.vars)
	}
	if cc.envErr != nil {
		return compiledCondition{}, cc.envErr
	}
	_, c.vars, c.err = CompileCondition(cc.env, expr)
	cc.seen[expr] = c
	if cc.shared != nil {
		cc.shared.put(key, c)
	}
	return c, nil
}
