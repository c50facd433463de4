package provenance_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"time"

	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
)

func ExampleGenerate() {
	src, err := os.ReadFile("../../testdata/workflows/fan-out-fan-in.yaml")
	if err != nil {
		log.Fatal(err)
	}
	b, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: "fan-out-fan-in.yaml"})
	if err != nil {
		log.Fatal(err)
	}
	pred, err := provenance.Generate(b, provenance.Options{
		BuilderID:      "https://github.com/acme/workflows/.github/workflows/publish.yml@refs/heads/main",
		SourceURI:      "git+https://github.com/acme/workflows",
		SourceRef:      "refs/heads/main",
		SourceRevision: "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d",
		WorkflowPath:   "workflows/fan-out-fan-in.yaml",
		StartedOn:      time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC),
		FinishedOn:     time.Date(2025, 6, 1, 12, 3, 7, 0, time.UTC),
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("buildType:", pred.BuildDefinition.BuildType)
	fmt.Println("builder:", pred.RunDetails.Builder.ID)
	for _, d := range pred.BuildDefinition.ResolvedDependencies {
		if d.Name != "" {
			fmt.Println("dependency:", d.Name)
		} else {
			fmt.Println("dependency:", d.URI)
		}
	}
	// Encode it with Marshal, not encoding/json, for an in-toto statement.
	if _, err := provenance.Marshal(pred); err != nil {
		log.Fatal(err)
	}
	// Output:
	// buildType: https://ociwf.dev/slsa/workflow-publish/v1
	// builder: https://github.com/acme/workflows/.github/workflows/publish.yml@refs/heads/main
	// dependency: workflows/fan-out-fan-in.yaml
	// dependency: git+https://github.com/acme/workflows@refs/heads/main
	// dependency: docker.io/curlimages/curl@sha256:427e4b79b1f0fc90306cbe064b1297b21dc6835bfa656d3bf46bc156e3f24bb0
	// dependency: docker.io/library/alpine@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
	// dependency: docker.io/library/node@sha256:545ea538461003efdc8c81c244531b003f6f26cfccf6c0073b3239fdedf49446
}

func ExampleDetect() {
	ci := map[string]string{
		"GITLAB_CI":        "true",
		"CI_PROJECT_URL":   "https://gitlab.com/acme/workflows",
		"CI_RUNNER_ID":     "5",
		"CI_COMMIT_SHA":    "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d",
		"CI_COMMIT_BRANCH": "main",
		"CI_JOB_URL":       "https://gitlab.com/acme/workflows/-/jobs/8002",
	}
	env := provenance.Detect(func(k string) string { return ci[k] })
	fmt.Println(env.System)
	fmt.Println(env.BuilderID)
	fmt.Println(env.SourceURI, env.SourceRef)
	// Output:
	// gitlab-ci
	// https://gitlab.com/acme/workflows/-/runners/5
	// git+https://gitlab.com/acme/workflows refs/heads/main
}
