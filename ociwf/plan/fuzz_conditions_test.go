package plan_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

// conditionPlan is a plan whose step "check" has expr for its condition,
// reading the params and the outputs of step "render" that the
// conditional-deploy sample declares.
func conditionPlan(expr string, vars []string) *plan.Plan {
	return &plan.Plan{
		Params: []plan.Param{
			{Name: "environment", Type: "string"},
			{Name: "dry_run", Type: "bool"},
			{Name: "replicas", Type: "int"},
			{Name: "approvers", Type: "list"},
		},
		Steps: []plan.Step{
			{ID: "render", Outputs: []plan.Output{{Name: "manifest_digest", Type: "string"}, {Name: "changed", Type: "bool"}}},
			{ID: "check", Needs: []string{"render"}, When: &plan.Condition{Expr: expr, Vars: vars}},
		},
	}
}

// FuzzConditions compiles an arbitrary condition as the DSL checks it and,
// when it compiles, as a plan's conditions are compiled for a run, then
// evaluates it over arbitrary values: no panic, compile errors are
// ErrInvalid, a plan of a compiling condition always builds, and an
// evaluation within the cost limit gives the same answer twice.
func FuzzConditions(f *testing.F) {
	// The conditions of the samples.
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "workflows", "*.yaml"))
	for _, name := range files {
		src, err := os.ReadFile(name)
		if err != nil || len(src) > 64<<10 {
			continue
		}
		wf, err := dsl.Parse(name, src)
		if err != nil {
			continue
		}
		for _, st := range wf.Steps {
			if st.When != "" {
				f.Add(strings.ReplaceAll(st.When, "steps.diff.", "steps.render."), "prod", int64(3), false, "a,b", "sha256:00")
			}
		}
	}
	f.Add(`params.approvers.exists(a, a == "x")`, "dev", int64(-1), true, "", "")
	f.Add(`[1,2,3].map(x, [1,2,3].map(y, x*y)).size() > 0`, "", int64(0), false, "", "")
	f.Add(`params.replicas / 0 == 1`, "", int64(0), false, "", "")
	f.Add(`params.environment.matches("(a+)+$")`, "aaaaaaaaaaaaaaaaaaaaaaaa!", int64(0), false, "", "")
	f.Fuzz(func(t *testing.T, expr, env string, replicas int64, dryRun bool, approvers, dgst string) {
		p := conditionPlan(expr, nil)
		cenv, err := dsl.NewConditionEnv(p.ConditionVars())
		if err != nil {
			t.Fatal(err)
		}
		_, reads, err := dsl.CompileCondition(cenv, expr)
		if err != nil {
			if !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("compile error of no class: %v", err)
			}
			return
		}
		p.Steps[1].When.Vars = reads
		conds, err := p.Conditions()
		if err != nil {
			if !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("condition %q compiles for the DSL, but not for a run: %v", expr, err)
			}
			return
		}
		v := plan.Values{
			Params:  map[string]any{"environment": env, "dry_run": dryRun, "replicas": replicas, "approvers": strings.Split(approvers, ",")},
			Outputs: map[string]map[string]any{"render": {"manifest_digest": dgst, "changed": !dryRun}},
		}
		ctx := context.Background()
		got, err := conds.Eval(ctx, "check", v)
		again, err2 := conds.Eval(ctx, "check", v)
		if (err == nil) != (err2 == nil) || got != again {
			t.Fatalf("condition %q: %v (%v), then %v (%v)", expr, got, err, again, err2)
		}
		if ran, err := conds.Eval(ctx, "render", v); !ran || err != nil {
			t.Fatalf("a step with no condition: %v, %v", ran, err)
		}
	})
}
