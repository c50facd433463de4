// Package plan defines the compiled execution plan of a workflow, its
// canonical JSON encoding, and the compiler that produces it from a parsed
// workflow and a Resolver.
//
// A plan is the validated DAG of a workflow with every image and sub-workflow
// pinned by digest, grouped into stages of steps that may run in parallel. Its
// encoding is canonical (RFC 8785 JSON Canonicalization Scheme), so the same
// workflow with the same resolutions yields the same bytes, and so the same
// digest, on any machine.
//
// For engines that run a plan, the package implements the runtime contract
// of docs/dsl.md: BindParams binds a run's params (and a sub-workflow's
// with), Conditions evaluates when conditions in the CEL environment the
// compiler checked them in, Step.ReadOutputs reads what a step emitted, and
// Step.Command says how run and args start its container.
package plan

// APIVersion identifies the plan format.
const APIVersion = "ociwf.dev/plan/v1"

// Plan is a compiled workflow.
type Plan struct {
	APIVersion   string       `json:"apiVersion"`
	Workflow     Workflow     `json:"workflow"`
	Source       Source       `json:"source"`
	Params       []Param      `json:"params,omitempty"`
	Steps        []Step       `json:"steps"`
	Stages       [][]string   `json:"stages"`
	Dependencies []Dependency `json:"dependencies,omitempty"`
}

// Workflow is the identity of the compiled workflow.
type Workflow struct {
	Name        string            `json:"name"`
	Version     string            `json:"version"`
	Description string            `json:"description,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
}

// Source pins the DSL source the plan was compiled from.
type Source struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Param is a parameter with its schema and default.
type Param struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Default     any    `json:"default,omitempty"`
	Enum        []any  `json:"enum,omitempty"`
}

// Step is a step with every reference pinned.
type Step struct {
	ID    string `json:"id"`
	Stage int    `json:"stage"`
	// Image is the pinned container image, repository@digest.
	Image string `json:"image,omitempty"`
	// Uses is the pinned sub-workflow, repository@digest.
	Uses    string            `json:"uses,omitempty"`
	With    map[string]string `json:"with,omitempty"`
	Run     string            `json:"run,omitempty"`
	Args    []string          `json:"args,omitempty"`
	Env     map[string]string `json:"env,omitempty"`
	Needs   []string          `json:"needs,omitempty"`
	When    *Condition        `json:"when,omitempty"`
	Retries int               `json:"retries,omitempty"`
	// Timeout is a Go duration string such as "15m0s".
	Timeout string   `json:"timeout,omitempty"`
	Outputs []Output `json:"outputs,omitempty"`
}

// Condition is a type-checked CEL expression and the variables it reads.
type Condition struct {
	Expr string   `json:"expr"`
	Vars []string `json:"vars,omitempty"`
}

// Output is a typed value a step produces.
type Output struct {
	Name        string `json:"name"`
	Type        string `json:"type"`
	Description string `json:"description,omitempty"`
}

// Kind tells what a dependency is.
type Kind string

// Dependency kinds.
const (
	KindImage    Kind = "image"
	KindWorkflow Kind = "workflow"
)

// Dependency is one entry of the dependency resolution manifest: a reference
// as written in the workflow and the digest it was pinned to.
type Dependency struct {
	Kind Kind `json:"kind"`
	// Ref is the reference as the workflow wrote it.
	Ref string `json:"ref"`
	// Pinned is the fully qualified repository@digest.
	Pinned string `json:"pinned"`
	// Digest is the pinned digest alone.
	Digest string `json:"digest"`
	// Workflow, for a workflow dependency, is the interface of the pinned
	// sub-workflow as compilation read it from that workflow's own plan;
	// the with values of every step that uses it were checked against its
	// params. It is nil when the resolver could not read the sub-workflow
	// (offline compilation): then nothing about with was checked beyond
	// its shape. Always nil for an image.
	Workflow *Interface `json:"workflow,omitempty"`
}

// Interface is what a parent workflow sees of a sub-workflow: its identity
// and the params a with binds.
type Interface struct {
	Name    string  `json:"name"`
	Version string  `json:"version"`
	Params  []Param `json:"params,omitempty"`
}

// Interface returns the interface of p as a sub-workflow: its name, version
// and params.
func (p *Plan) Interface() *Interface {
	return &Interface{Name: p.Workflow.Name, Version: p.Workflow.Version, Params: p.Params}
}
