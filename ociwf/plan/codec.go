package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
)

// MaxBytes is the largest encoded plan Decode accepts.
const MaxBytes = 64 << 20

// Encode returns the canonical JSON encoding of p (RFC 8785).
func (p *Plan) Encode() ([]byte, error) {
	b, err := encodePlan(p)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return b, nil
}

// Decode parses an encoded plan strictly: unknown fields, non-canonical
// encoding and broken invariants (unknown needs, inconsistent stages,
// unpinned references) are errors wrapping errdef.ErrInvalid.
func Decode(b []byte) (*Plan, error) {
	if len(b) > MaxBytes {
		return nil, fmt.Errorf("plan is %d bytes, over the %d byte limit: %w", len(b), MaxBytes, errdef.ErrTooLarge)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var p Plan
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("decode plan: %v: %w", err, errdef.ErrInvalid)
	}
	if dec.More() {
		return nil, fmt.Errorf("decode plan: trailing data after the plan: %w", errdef.ErrInvalid)
	}
	normalizeValues(&p)
	if err := p.Validate(); err != nil {
		return nil, err
	}
	canon, err := p.Encode()
	if err != nil {
		return nil, fmt.Errorf("decode plan: %v: %w", err, errdef.ErrInvalid)
	}
	if !bytes.Equal(canon, b) {
		return nil, fmt.Errorf("decode plan: not in canonical form (RFC 8785): %w", errdef.ErrInvalid)
	}
	return &p, nil
}

// normalizeValues turns json.Number defaults into int64 so a decoded plan
// compares equal to a compiled one.
func normalizeValues(p *Plan) {
	conv := func(v any) any {
		switch x := v.(type) {
		case json.Number:
			if i, err := x.Int64(); err == nil {
				return i
			}
		case []any:
			out := make([]string, 0, len(x))
			for _, e := range x {
				s, ok := e.(string)
				if !ok {
					return v
				}
				out = append(out, s)
			}
			return out
		}
		return v
	}
	params := func(ps []Param) {
		for i := range ps {
			ps[i].Default = conv(ps[i].Default)
			for j := range ps[i].Enum {
				ps[i].Enum[j] = conv(ps[i].Enum[j])
			}
		}
	}
	params(p.Params)
	for _, d := range p.Dependencies {
		if d.Workflow != nil {
			params(d.Workflow.Params)
		}
	}
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("invalid plan: "+format+": %w", append(args, errdef.ErrInvalid)...)
}

// Validate checks the invariants every plan holds: a known apiVersion, unique
// steps, needs that name earlier stages, stages that match the steps, and
// every reference pinned and listed among the dependencies.
func (p *Plan) Validate() error {
	if p.APIVersion != APIVersion {
		return invalid("apiVersion %q, want %q", p.APIVersion, APIVersion)
	}
	if p.Workflow.Name == "" || p.Workflow.Version == "" {
		return invalid("workflow name and version are required")
	}
	if _, err := digest.Parse(p.Source.Digest); err != nil || p.Source.Size < 0 {
		return invalid("source digest %q: want a digest and a size", p.Source.Digest)
	}
	if err := checkParams(p.Params); err != nil {
		return err
	}
	if len(p.Steps) == 0 {
		return invalid("no steps")
	}
	deps := make(map[string]Dependency, len(p.Dependencies))
	for i, d := range p.Dependencies {
		if err := d.check(); err != nil {
			return err
		}
		if i > 0 && !lessDep(p.Dependencies[i-1], d) {
			return invalid("dependencies not sorted by kind and ref, or repeated, at %q", d.Ref)
		}
		deps[d.Pinned] = d
	}
	stageOf := make(map[string]int, len(p.Steps))
	for _, st := range p.Steps {
		if st.ID == "" {
			return invalid("step without an id")
		}
		if _, dup := stageOf[st.ID]; dup {
			return invalid("duplicate step %q", st.ID)
		}
		stageOf[st.ID] = st.Stage
	}
	if len(p.Stages) == 0 {
		return invalid("no stages")
	}
	used := make(map[string]bool, len(p.Dependencies))
	for _, st := range p.Steps {
		want := 0
		for _, n := range st.Needs {
			s, ok := stageOf[n]
			if !ok {
				return invalid("step %q needs unknown step %q", st.ID, n)
			}
			if s+1 > want {
				want = s + 1
			}
		}
		if st.Stage != want || st.Stage >= len(p.Stages) {
			return invalid("step %q is in stage %d, want %d", st.ID, st.Stage, want)
		}
		ref, kind := st.Image, KindImage
		if st.Uses != "" {
			ref, kind = st.Uses, KindWorkflow
		}
		if (st.Image == "") == (st.Uses == "") {
			return invalid("step %q must have exactly one of image and uses", st.ID)
		}
		d, ok := deps[ref]
		if !ok || d.Kind != kind {
			return invalid("step %q: %s %q is not in the dependency manifest", st.ID, kind, ref)
		}
		if len(st.With) > 0 && st.Uses == "" {
			return invalid("step %q: with without uses", st.ID)
		}
		if st.Uses != "" && (st.Run != "" || len(st.Args) > 0 || len(st.Env) > 0 || len(st.Outputs) > 0) {
			return invalid("step %q: run, args, env or outputs with uses", st.ID)
		}
		if d.Workflow != nil {
			if _, probs := bindParams(d.Workflow.Params, st.With); len(probs) > 0 {
				return invalid("step %q: with does not bind the params of workflow %s %s: %s", st.ID, d.Workflow.Name, d.Workflow.Version, probs[0])
			}
		}
		used[ref] = true
	}
	if len(used) != len(deps) {
		return invalid("the dependency manifest lists references no step uses")
	}
	n := 0
	for i, stage := range p.Stages {
		for j, id := range stage {
			s, ok := stageOf[id]
			if !ok || s != i {
				return invalid("stage %d lists %q, which is not a step of that stage", i, id)
			}
			if j > 0 && stage[j-1] >= id {
				return invalid("stage %d is not sorted", i)
			}
			n++
		}
	}
	if n != len(p.Steps) {
		return invalid("stages list %d steps, the plan has %d", n, len(p.Steps))
	}
	return nil
}

func lessDep(a, b Dependency) bool {
	if a.Kind != b.Kind {
		return a.Kind < b.Kind
	}
	return a.Ref < b.Ref
}

func (d Dependency) check() error {
	if d.Kind != KindImage && d.Kind != KindWorkflow {
		return invalid("dependency %q has unknown kind %q", d.Ref, d.Kind)
	}
	dg, err := digest.Parse(d.Digest)
	if err != nil {
		return invalid("dependency %q: bad digest %q", d.Ref, d.Digest)
	}
	name, rest, ok := strings.Cut(d.Pinned, "@")
	if !ok || rest != dg.String() {
		return invalid("dependency %q: pinned %q does not end in @%s", d.Ref, d.Pinned, dg)
	}
	if _, err := reference.ParseNamed(name); err != nil {
		return invalid("dependency %q: pinned repository %q: %v", d.Ref, name, err)
	}
	if w := d.Workflow; w != nil {
		if d.Kind != KindWorkflow {
			return invalid("image dependency %q records a workflow interface", d.Ref)
		}
		if w.Name == "" || w.Version == "" {
			return invalid("dependency %q: the sub-workflow's name and version are required", d.Ref)
		}
		if err := checkParams(w.Params); err != nil {
			return fmt.Errorf("dependency %q: %w", d.Ref, err)
		}
	}
	return nil
}
