package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/internal/gen"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
)

var update = flag.Bool("update", false, "rewrite golden files")

const workflows = "../testdata/workflows"

// offlineSamples are the valid samples that are fully pinned and compile
// without a registry.
var offlineSamples = []string{"build-test-release.yaml", "fan-out-fan-in.yaml", "generated-200.yaml"}

func readSample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(workflows, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestInvalidWorkflows checks that every invalid sample fails with exactly
// the error recorded next to it in NAME.err.
func TestInvalidWorkflows(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(workflows, "invalid", "*.yaml"))
	if err != nil || len(files) < 15 {
		t.Fatalf("want at least 15 invalid samples, found %d (%v)", len(files), err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(strings.TrimSuffix(name, ".yaml"), func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			_, err = ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: name})
			if err == nil {
				t.Fatal("compiled without error")
			}
			if !errors.Is(err, errdef.ErrInvalid) && !errors.Is(err, errdef.ErrNotPinned) {
				t.Errorf("error %v is neither ErrInvalid nor ErrNotPinned", err)
			}
			golden := strings.TrimSuffix(f, ".yaml") + ".err"
			got := err.Error() + "\n"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden error (run go test -update): %v", err)
			}
			if got != string(want) {
				t.Errorf("error:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestOfflineSamplesCompileDeterministically(t *testing.T) {
	for _, name := range offlineSamples {
		t.Run(name, func(t *testing.T) {
			src := readSample(t, name)
			a, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: name})
			if err != nil {
				t.Fatal(err)
			}
			b, err := ociwf.Compile(context.Background(), bytes.Clone(src), ociwf.CompileOptions{File: name})
			if err != nil {
				t.Fatal(err)
			}
			for _, pair := range [][2][]byte{{a.PlanJSON, b.PlanJSON}, {a.SBOM, b.SBOM}, {a.Config, b.Config}} {
				if !bytes.Equal(pair[0], pair[1]) {
					t.Fatal("two compilations of the same input differ")
				}
			}
			for _, st := range a.Plan.Steps {
				if !strings.Contains(st.Image+st.Uses, "@sha256:") {
					t.Errorf("step %s is not pinned: %q", st.ID, st.Image+st.Uses)
				}
			}
		})
	}
}

func TestGeneratedSampleIsCurrent(t *testing.T) {
	path := filepath.Join(workflows, "generated-200.yaml")
	want := gen.Workflow(200)
	if *update {
		if err := os.WriteFile(path, want, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if got := readSample(t, "generated-200.yaml"); !bytes.Equal(got, want) {
		t.Fatal("testdata/workflows/generated-200.yaml is stale; run go test ./ociwf -run Generated -update")
	}
}

func TestUnpinnedSamplesNeedAResolver(t *testing.T) {
	for _, name := range []string{"conditional-deploy.yaml", "nested-uses.yaml"} {
		_, err := ociwf.Compile(context.Background(), readSample(t, name), ociwf.CompileOptions{File: name})
		if !errors.Is(err, errdef.ErrNotPinned) {
			t.Errorf("%s: offline compile error = %v, want ErrNotPinned", name, err)
		}
	}
}

// TestCompileChecksWithAgainstSubWorkflow publishes sub-workflows to a
// loopback registry and checks every with value of a parent against the
// params of the sub-workflow it pins.
func TestCompileChecksWithAgainstSubWorkflow(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	const gate = `apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: gate, version: 1.0.0}
params:
  - {name: environment, type: string, required: true, enum: [staging, prod]}
  - {name: approvers, type: list}
steps:
  - id: check
    image: docker.io/library/alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
    run: "true"
`
	for name, src := range map[string][]byte{
		"build-test-release": readSample(t, "build-test-release.yaml"),
		"fan-out-fan-in":     readSample(t, "fan-out-fan-in.yaml"),
		"gate":               []byte(gate),
	} {
		b, err := ociwf.Compile(ctx, src, ociwf.CompileOptions{File: name + ".yaml"})
		if err != nil {
			t.Fatal(err)
		}
		dst := open(t, host+"/workflows/"+name, false)
		if _, err := ociwf.Push(ctx, dst.Storage, b, b.Plan.Workflow.Version, ociwf.PushOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	parent := func(with string) []byte {
		return []byte(`apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: parent, version: 1.0.0}
steps:
  - id: sub
    uses: ` + host + `/workflows/` + with)
	}
	cases := []struct {
		name, src, err string
	}{
		{"int not a number", "fan-out-fan-in:2.0.1\n    with:\n      shards: \"abc\"\n",
			`parent.yaml:8:15: step "sub": with.shards: "abc" is not an int (a decimal integer such as 42) for param shards of workflow fan-out-fan-in 2.0.1`},
		{"int not in enum", "fan-out-fan-in:2.0.1\n    with: {shards: \"3\"}\n",
			`parent.yaml:7:20: step "sub": with.shards: 3 is not one of 2, 4, 8 (param shards of workflow fan-out-fan-in 2.0.1)`},
		{"unknown param", "fan-out-fan-in:2.0.1\n    with:\n      shard: \"4\"\n",
			`parent.yaml:8:7: step "sub": with: workflow fan-out-fan-in 2.0.1 has no param "shard" (its params: shards, fail_fast)`},
		{"bool", "build-test-release:1.4.0\n    with:\n      release: not-a-bool\n",
			`parent.yaml:8:16: step "sub": with.release: "not-a-bool" is not a bool (true or false) for param release of workflow build-test-release 1.4.0`},
		{"list", "build-test-release:1.4.0\n    with:\n      packages: ./...\n",
			`parent.yaml:8:17: step "sub": with.packages: "./..." is not a list (a JSON array of strings such as ["a", "b"]) for param packages of workflow build-test-release 1.4.0`},
		{"missing required", "gate:1.0.0\n    with:\n      approvers: '[\"ann\", \"bob\"]'\n",
			`parent.yaml:7:5: step "sub": with: workflow gate 1.0.0 requires param "environment"`},
		{"missing required without with", "gate:1.0.0\n",
			`parent.yaml:6:11: step "sub": with: workflow gate 1.0.0 requires param "environment"`},
		{"string enum", "gate:1.0.0\n    with: {environment: dev}\n",
			`parent.yaml:7:25: step "sub": with.environment: "dev" is not one of "staging", "prod" (param environment of workflow gate 1.0.0)`},
		{"every problem", "fan-out-fan-in:2.0.1\n    with:\n      shards: \"8.0\"\n      fail_fast: \"yes\"\n      extra: x\n",
			`parent.yaml:8:15: step "sub": with.shards: "8.0" is not an int (a decimal integer such as 42) for param shards of workflow fan-out-fan-in 2.0.1` + "\n" +
				`parent.yaml:9:18: step "sub": with.fail_fast: "yes" is not a bool (true or false) for param fail_fast of workflow fan-out-fan-in 2.0.1` + "\n" +
				`parent.yaml:10:7: step "sub": with: workflow fan-out-fan-in 2.0.1 has no param "extra" (its params: shards, fail_fast)`},
		{"good", "gate:1.0.0\n    with:\n      environment: prod\n      approvers: '[\"ann\", \"bob\"]'\n", ""},
		{"good, defaults", "fan-out-fan-in:2.0.1\n    with: {shards: \"8\", fail_fast: false}\n", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ociwf.Compile(ctx, parent(c.src), ociwf.CompileOptions{File: "parent.yaml", Resolver: ociwf.NewRegistryResolver(o)})
			if c.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(b.Plan.Dependencies) != 1 {
					t.Fatalf("dependencies = %+v", b.Plan.Dependencies)
				}
				for _, d := range b.Plan.Dependencies {
					if d.Kind == plan.KindWorkflow && (d.Workflow == nil || len(d.Workflow.Params) != 2) {
						t.Errorf("workflow dependency %s records params %+v, want the sub-workflow's two", d.Ref, d.Workflow)
					}
				}
				// The plan's own dependencies reproduce it without a
				// registry, as the verifier recompiles it.
				again, err := ociwf.Compile(ctx, parent(c.src), ociwf.CompileOptions{File: "parent.yaml", Resolver: recorded(b.Plan.Dependencies)})
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(again.PlanJSON, b.PlanJSON) {
					t.Fatalf("recompiling from the plan's dependencies gives another plan:\n%s\n%s", again.PlanJSON, b.PlanJSON)
				}
				return
			}
			if err == nil {
				t.Fatal("compiled without error")
			}
			if !errors.Is(err, errdef.ErrInvalid) {
				t.Errorf("error %v is not ErrInvalid", err)
			}
			if err.Error() != c.err {
				t.Errorf("error:\n%s\nwant:\n%s", err, c.err)
			}
		})
	}
}

// recorded resolves references as a plan recorded them.
type recorded []plan.Dependency

func (r recorded) Resolve(ctx context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	for _, d := range r {
		if d.Kind == kind && d.Ref == ref {
			return d, nil
		}
	}
	return plan.Offline{}.Resolve(ctx, kind, ref)
}

// TestOfflineCompileRecordsUncheckedWith compiles a parent whose uses is
// pinned by digest without a registry: its with values cannot be checked,
// and the plan's dependency says so by recording no sub-workflow params.
func TestOfflineCompileRecordsUncheckedWith(t *testing.T) {
	src := []byte(`apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: parent, version: 1.0.0}
steps:
  - id: sub
    uses: registry.example.com/workflows/fan-out-fan-in@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41
    with: {shards: "abc"}
`)
	b, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: "parent.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	if d := b.Plan.Dependencies[0]; d.Workflow != nil {
		t.Fatalf("offline dependency records sub-workflow %+v", d.Workflow)
	}
}
