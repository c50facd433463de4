// Package dsl parses and validates the ociwf workflow language.
//
// A workflow is one YAML document (see docs/dsl.md and workflow.schema.json).
// Parse reads it strictly: unknown fields, duplicate keys, duplicate step ids,
// dangling needs, dependency cycles, ill-typed conditions and malformed
// references are errors that name the file, line and column. Hostile input
// (alias bombs, huge documents, deep nesting) is rejected before it is
// expanded.
package dsl

import (
	"sort"
	"time"
)

// APIVersion is the only workflow apiVersion this package accepts.
const APIVersion = "ociwf.dev/v1"

// Kind is the only workflow kind this package accepts.
const Kind = "Workflow"

// Limits on hostile or accidental input; see docs/dsl.md.
const (
	// MaxSourceBytes is the largest workflow source Parse accepts.
	MaxSourceBytes = 4 << 20
	// MaxDepth is the deepest YAML nesting Parse accepts.
	MaxDepth = 32
	// MaxNodes bounds the YAML nodes visited, counting alias expansion.
	MaxNodes = 1 << 21
	// MaxSteps is the largest number of steps in one workflow.
	MaxSteps = 50000
	// MaxErrors is how many problems Parse reports before it gives up.
	MaxErrors = 20
)

// Type is the type of a parameter or a step output.
type Type string

// The value types of parameters and step outputs.
const (
	TypeString Type = "string"
	TypeInt    Type = "int"
	TypeBool   Type = "bool"
	TypeList   Type = "list" // a list of strings
)

// Pos is a 1-based line and column in the workflow source.
type Pos struct {
	Line   int
	Column int
}

// Workflow is a parsed and validated workflow.
type Workflow struct {
	// File names the source in error messages.
	File       string
	APIVersion string
	Kind       string
	Metadata   Metadata
	Params     []Param
	Steps      []Step

	stages [][]int // step indexes by topological stage, computed by validation
}

// Metadata names and describes a workflow.
type Metadata struct {
	Name        string
	Version     string
	Description string
	Labels      map[string]string
}

// Param declares a workflow parameter.
type Param struct {
	Name        string
	Type        Type
	Description string
	Required    bool
	// Default is nil, or a value of Type: string, int64, bool or []string.
	Default any
	// Enum lists the allowed values (scalars of Type), if any.
	Enum []any
	Pos  Pos
}

// Step is one node of the workflow graph. Exactly one of Image and Uses is set.
type Step struct {
	ID    string
	Image string            // container image reference
	Uses  string            // OCI reference of another ociwf workflow
	With  map[string]string // parameter values for Uses
	Run   string
	Args  []string
	Env   map[string]string
	Needs []string
	When  string // CEL condition, bool-typed
	// WhenVars lists the variables When reads (params.x,
	// steps.y.outputs.z), sorted; set by validation.
	WhenVars []string
	Retries  int
	Timeout  time.Duration
	Outputs  []Output

	Pos      Pos // position of the step
	ImagePos Pos // position of the image or uses value
	WhenPos  Pos // position of the when value
	WithPos  Pos // position of the with key
	// WithKeys and WithValues hold the position of each with key and of
	// its value.
	WithKeys, WithValues map[string]Pos
}

// Output declares a value a step produces for later conditions.
type Output struct {
	Name        string
	Type        Type
	Description string
}

// Stages returns step ids grouped by topological stage: every step of a stage
// depends only on steps of earlier stages, so the steps of one stage may run in
// parallel. Ids are sorted within a stage.
func (w *Workflow) Stages() [][]string {
	out := make([][]string, len(w.stages))
	for i, st := range w.stages {
		ids := make([]string, len(st))
		for j, idx := range st {
			ids[j] = w.Steps[idx].ID
		}
		sort.Strings(ids)
		out[i] = ids
	}
	return out
}
