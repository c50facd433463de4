package plan_test

import (
	"context"
	"fmt"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/plan"
)

const exampleWorkflow = `apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: ship, version: 1.0.0}
params:
  - {name: release, type: bool, default: false}
steps:
  - id: build
    image: docker.io/library/golang:1.23@sha256:d754ed9f64ac293b10268157f283ee23256fb32a4f8dedb25c8446ca5bcb0bb3
    run: go build ./... && printf 3 > "$OCIWF_OUTPUTS/warnings"
    outputs: [{name: warnings, type: int}]
  - id: publish
    image: docker.io/library/alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
    run: ./publish.sh
    needs: [build]
    when: params.release && steps.build.outputs.warnings < 5
`

// Evaluate a plan's conditions as an engine does: bind the run's params,
// parse what each step emitted, and ask whether the next step runs.
func ExampleConditions() {
	ctx := context.Background()
	wf, err := dsl.Parse("ship.yaml", []byte(exampleWorkflow))
	if err != nil {
		fmt.Println(err)
		return
	}
	p, err := plan.Compile(ctx, wf, []byte(exampleWorkflow), plan.Offline{})
	if err != nil {
		fmt.Println(err)
		return
	}
	conds, err := p.Conditions()
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, release := range []string{"false", "true"} {
		params, err := plan.BindParams(p.Params, map[string]string{"release": release})
		if err != nil {
			fmt.Println(err)
			return
		}
		// build ran and wrote "3" to $OCIWF_OUTPUTS/warnings.
		build, err := p.Steps[0].ParseOutputs(map[string]string{"warnings": "3"})
		if err != nil {
			fmt.Println(err)
			return
		}
		ok, err := conds.Eval(ctx, "publish", plan.Values{Params: params, Outputs: map[string]map[string]any{"build": build}})
		fmt.Printf("release=%s: publish runs: %v (%v)\n", release, ok, err)
	}
	// The typed declarations, as conds.Env() declares them for CEL.
	for _, v := range p.ConditionVars() {
		fmt.Println(v.Name, v.Type)
	}
	// Output:
	// release=false: publish runs: false (<nil>)
	// release=true: publish runs: true (<nil>)
	// params.release bool
	// steps.build.outputs.warnings int
}
