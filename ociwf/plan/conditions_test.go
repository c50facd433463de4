package plan_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

// run executes p's conditions as an engine does: stage by stage, a step
// runs when its condition holds; a step that ran emits outputs(step) (as
// the raw strings a step writes), a skipped step emits none. It returns the
// ids of the steps that ran, sorted.
func run(t *testing.T, p *plan.Plan, params map[string]string, outputs func(st *plan.Step) map[string]string) ([]string, error) {
	t.Helper()
	conds, err := p.Conditions()
	if err != nil {
		t.Fatal(err)
	}
	bound, err := plan.BindParams(p.Params, params)
	if err != nil {
		return nil, err
	}
	steps := map[string]*plan.Step{}
	for i := range p.Steps {
		steps[p.Steps[i].ID] = &p.Steps[i]
	}
	v := plan.Values{Params: bound, Outputs: map[string]map[string]any{}}
	var ran []string
	for _, stage := range p.Stages {
		for _, id := range stage {
			ok, err := conds.Eval(context.Background(), id, v)
			if err != nil {
				return nil, err
			}
			if !ok {
				continue
			}
			ran = append(ran, id)
			st := steps[id]
			out, err := st.ParseOutputs(outputs(st))
			if err != nil {
				t.Fatalf("step %s outputs: %v", id, err)
			}
			v.Outputs[id] = out
		}
	}
	slices.Sort(ran)
	return ran, nil
}

// fixed gives the outputs of each step by id; a step not listed emits
// every declared output with the value def.
func fixed(byStep map[string]map[string]string, def map[string]string) func(st *plan.Step) map[string]string {
	return func(st *plan.Step) map[string]string {
		if o, ok := byStep[st.ID]; ok {
			return o
		}
		o := map[string]string{}
		for _, out := range st.Outputs {
			o[out.Name] = def[out.Type]
		}
		return o
	}
}

// TestSampleConditions compiles every sample workflow and executes its
// conditions through the exported surface under several param values and
// step outputs.
func TestSampleConditions(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "testdata", "workflows", "*.yaml"))
	if err != nil || len(files) < 5 {
		t.Fatalf("samples: %v %v", files, err)
	}
	type scenario struct {
		name    string
		params  map[string]string
		outputs map[string]map[string]string
		skipped []string // steps whose condition does not hold; "*" for every step with one
	}
	var all = []string{"*"}
	scenarios := map[string][]scenario{
		"build-test-release.yaml": {
			{"defaults", nil, nil, []string{"release"}},
			{"release", map[string]string{"release": "true"}, map[string]map[string]string{"build": {"version": "1.4.0"}, "scan": {"findings": "0"}}, nil},
			{"findings", map[string]string{"release": "true"}, map[string]map[string]string{"build": {"version": "1.4.0"}, "scan": {"findings": "3"}}, []string{"release"}},
			{"no version", map[string]string{"release": "true"}, map[string]map[string]string{"build": {"version": ""}, "scan": {"findings": "0"}}, []string{"release"}},
		},
		"conditional-deploy.yaml": {
			{"staging", map[string]string{"environment": "staging"}, map[string]map[string]string{"diff": {"changed": "true"}}, []string{"deploy_prod"}},
			{"unchanged", map[string]string{"environment": "staging"}, map[string]map[string]string{"diff": {"changed": "false"}}, []string{"deploy_nonprod", "deploy_prod"}},
			{"prod", map[string]string{"environment": "prod", "replicas": "3", "approvers": `["ann", "bob"]`},
				map[string]map[string]string{"diff": {"changed": "true"}, "render": {"manifest_digest": "sha256:0f"}}, []string{"deploy_nonprod"}},
			{"prod, one approver", map[string]string{"environment": "prod", "replicas": "3", "approvers": `["ann"]`},
				map[string]map[string]string{"diff": {"changed": "true"}, "render": {"manifest_digest": "sha256:0f"}}, []string{"deploy_nonprod", "deploy_prod"}},
			{"dry run", map[string]string{"environment": "dev", "dry_run": "true"}, map[string]map[string]string{"diff": {"changed": "true"}}, []string{"deploy_nonprod", "deploy_prod"}},
		},
		"fan-out-fan-in.yaml": {
			{"defaults", nil, nil, []string{"notify"}},
			{"two shards", map[string]string{"shards": "2"}, nil, []string{"notify", "shard_3", "shard_4"}},
			{"eight, not fail fast", map[string]string{"shards": "8", "fail_fast": "false"}, nil, nil},
		},
		"nested-uses.yaml": {
			{"defaults", nil, nil, []string{"promote"}},
			{"prod", map[string]string{"environment": "prod"}, nil, nil},
		},
		"generated-200.yaml": {
			{"every output true", nil, nil, nil},
			{"quick, level 0, outputs false", map[string]string{"mode": "quick", "level": "0"}, nil, all},
		},
	}
	def := map[string]string{"string": "x", "int": "0", "bool": "true", "list": "[]"}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			src := sample(t, name)
			wf, err := dsl.Parse(name, src)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Compile(context.Background(), wf, src, pinned{})
			if err != nil {
				t.Fatal(err)
			}
			if len(scenarios[name]) == 0 {
				t.Fatalf("no scenarios for sample %s", name)
			}
			for _, sc := range scenarios[name] {
				t.Run(sc.name, func(t *testing.T) {
					d := def
					if slices.Equal(sc.skipped, all) {
						d = map[string]string{"string": "", "int": "1", "bool": "false", "list": "[]"}
					}
					got, err := run(t, p, sc.params, fixed(sc.outputs, d))
					if err != nil {
						t.Fatal(err)
					}
					var want []string
					for _, st := range p.Steps {
						skip := slices.Contains(sc.skipped, st.ID) || (slices.Equal(sc.skipped, all) && st.When != nil)
						if !skip {
							want = append(want, st.ID)
						}
					}
					slices.Sort(want)
					if !slices.Equal(got, want) {
						t.Errorf("ran %v\nwant %v", got, want)
					}
				})
			}
		})
	}
}

func TestConditionErrors(t *testing.T) {
	src := sample(t, "conditional-deploy.yaml")
	wf, err := dsl.Parse("conditional-deploy.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(context.Background(), wf, src, pinned{})
	if err != nil {
		t.Fatal(err)
	}
	conds, err := p.Conditions()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.BindParams(p.Params, nil); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("binding without the required environment: %v", err)
	}
	params, err := plan.BindParams(p.Params, map[string]string{"environment": "dev"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// An output of a step that was skipped, or has not run, is unset.
	_, err = conds.Eval(ctx, "deploy_nonprod", plan.Values{Params: params})
	var unset *plan.UnsetError
	if !errors.As(err, &unset) || unset.Var != "steps.diff.outputs.changed" || unset.Step != "deploy_nonprod" {
		t.Fatalf("err = %v, want UnsetError for steps.diff.outputs.changed", err)
	}
	// So is a param the caller did not bind.
	_, err = conds.Eval(ctx, "deploy_nonprod", plan.Values{Outputs: map[string]map[string]any{"diff": {"changed": true}}})
	if !errors.As(err, &unset) || unset.Var != "params.dry_run" {
		t.Fatalf("err = %v, want UnsetError for params.dry_run", err)
	}
	// A value of the wrong Go type is refused, not converted.
	bad := map[string]any{}
	for k, v := range params {
		bad[k] = v
	}
	bad["dry_run"] = "false"
	_, err = conds.Eval(ctx, "deploy_nonprod", plan.Values{Params: bad, Outputs: map[string]map[string]any{"diff": {"changed": true}}})
	if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "params.dry_run") {
		t.Fatalf("err = %v, want ErrInvalid naming params.dry_run", err)
	}
	if _, err := conds.Eval(ctx, "nope", plan.Values{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("unknown step: err = %v", err)
	}
	// A step without a condition runs.
	if ok, err := conds.Eval(ctx, "render", plan.Values{}); !ok || err != nil {
		t.Fatalf("render: %v, %v", ok, err)
	}
	// Outputs must all be there and parse as their types.
	diff := &p.Steps[1]
	if diff.ID != "diff" {
		t.Fatalf("step 1 is %s", diff.ID)
	}
	if _, err := diff.ParseOutputs(map[string]string{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("missing output: err = %v", err)
	}
	if _, err := diff.ParseOutputs(map[string]string{"changed": "yes"}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("ill-typed output: err = %v", err)
	}
	if _, err := diff.ParseOutputs(map[string]string{"changed": "true", "extra": "1"}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("undeclared output: err = %v", err)
	}
}

// TestConditionsRefuseUncheckedPlans: a plan whose condition does not
// type-check, or records other variables than it reads, has no Conditions.
func TestConditionsRefuseUncheckedPlans(t *testing.T) {
	for name, edit := range map[string]func(*plan.Plan){
		"not bool":   func(p *plan.Plan) { p.Steps[len(p.Steps)-1].When.Expr = "params.shards" },
		"undeclared": func(p *plan.Plan) { p.Steps[len(p.Steps)-1].When.Expr = "params.nope" },
		"vars":       func(p *plan.Plan) { p.Steps[len(p.Steps)-1].When.Vars = nil },
	} {
		t.Run(name, func(t *testing.T) {
			p, _ := compile(t, sample(t, "fan-out-fan-in.yaml"))
			edit(p)
			if _, err := p.Conditions(); !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestStepCommand(t *testing.T) {
	for _, c := range []struct {
		step             plan.Step
		entrypoint, args []string
	}{
		{plan.Step{ID: "a", Args: []string{"go", "vet"}}, nil, []string{"go", "vet"}},
		{plan.Step{ID: "b", Run: "echo $1"}, []string{"/bin/sh", "-c", "echo $1", "b"}, nil},
		{plan.Step{ID: "c", Run: "echo $1", Args: []string{"x"}}, []string{"/bin/sh", "-c", "echo $1", "c"}, []string{"x"}},
		{plan.Step{ID: "d"}, nil, nil},
	} {
		ep, args := c.step.Command()
		if !slices.Equal(ep, c.entrypoint) || !slices.Equal(args, c.args) {
			t.Errorf("%s: Command() = %q, %q; want %q, %q", c.step.ID, ep, args, c.entrypoint, c.args)
		}
	}
}

func TestReadOutputs(t *testing.T) {
	st := &plan.Step{ID: "build", Outputs: []plan.Output{{Name: "version", Type: "string"}, {Name: "warnings", Type: "int"}, {Name: "files", Type: "list"}}}
	write := func(t *testing.T, files map[string]string) string {
		t.Helper()
		dir := t.TempDir()
		for name, content := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	got, err := st.ReadOutputs(write(t, map[string]string{"version": "1.4.0\n", "warnings": "3", "files": "[\"a\"]\r\n"}))
	if err != nil {
		t.Fatal(err)
	}
	if want := `map[string]interface {}{"files":[]string{"a"}, "version":"1.4.0", "warnings":3}`; fmt.Sprintf("%#v", got) != want {
		t.Errorf("outputs %#v, want %s", got, want)
	}
	if got, err := st.ReadOutputs(write(t, map[string]string{"version": "two\nlines\n\n", "warnings": "0", "files": "[]"})); err != nil || got["version"] != "two\nlines\n" {
		t.Errorf("only one trailing newline is removed: %q, %v", got["version"], err)
	}
	for name, files := range map[string]map[string]string{
		"missing":    {"version": "1", "warnings": "3"},
		"ill-typed":  {"version": "1", "warnings": "three", "files": "[]"},
		"undeclared": {"version": "1", "warnings": "3", "files": "[]", "extra": "x"},
		"too large":  {"version": strings.Repeat("x", plan.MaxOutputBytes+1), "warnings": "3", "files": "[]"},
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := st.ReadOutputs(write(t, files)); !errors.Is(err, errdef.ErrInvalid) && !errors.Is(err, errdef.ErrTooLarge) {
				t.Fatalf("err = %v, want ErrInvalid or ErrTooLarge", err)
			}
		})
	}
}
