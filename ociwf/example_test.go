package ociwf_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"oras.land/oras-go/v2/content/oci"

	"ociwf.dev/ociwf"
)

const exampleWorkflow = `apiVersion: ociwf.dev/v1
kind: Workflow
metadata:
  name: hello
  version: 1.0.0
params:
  - name: loud
    type: bool
    default: false
steps:
  - id: greet
    image: docker.io/library/alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
    run: echo hello
  - id: shout
    image: docker.io/library/alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
    run: echo HELLO
    needs: [greet]
    when: params.loud
`

// Compile a workflow offline: every image is pinned, so no registry is asked.
func ExampleCompile() {
	b, err := ociwf.Compile(context.Background(), []byte(exampleWorkflow), ociwf.CompileOptions{File: "hello.yaml"})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(b.Plan.Workflow.Name, b.Plan.Workflow.Version)
	fmt.Println("stages:", b.Plan.Stages)
	fmt.Println("pinned:", b.Plan.Dependencies[0].Pinned)
	// Output:
	// hello 1.0.0
	// stages: [[greet] [shout]]
	// pinned: docker.io/library/alpine@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
}

// Publish a workflow write-once into an OCI image layout, then pull it back
// by digest the way a runtime would.
func ExamplePush() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "ociwf-example")
	defer os.RemoveAll(dir)

	store, err := oci.New(filepath.Join(dir, "layout"))
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := ociwf.Compile(ctx, []byte(exampleWorkflow), ociwf.CompileOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	desc, err := ociwf.Push(ctx, store, b, "1.0.0", ociwf.PushOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	pulled, err := ociwf.Pull(ctx, store, desc.Digest.String(), filepath.Join(dir, "out"), ociwf.WriteOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, f := range pulled.Files {
		fmt.Println(filepath.Base(f))
	}
	fmt.Println(pulled.Config.Name, pulled.Config.Steps, "steps")
	// Output:
	// workflow.yaml
	// plan.json
	// sbom.cdx.json
	// hello 2 steps
}
