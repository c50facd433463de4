package plan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/internal/gen"
	"ociwf.dev/ociwf/plan"
)

func compile(t testing.TB, src []byte) (*plan.Plan, []byte) {
	t.Helper()
	wf, err := dsl.Parse("wf.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(context.Background(), wf, src, plan.Offline{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPlanShape(t *testing.T) {
	p, _ := compile(t, sample(t, "build-test-release.yaml"))
	want := [][]string{{"build"}, {"lint", "sbom", "scan", "unit_test"}, {"release"}}
	if fmt.Sprint(p.Stages) != fmt.Sprint(want) {
		t.Errorf("stages = %v, want %v", p.Stages, want)
	}
	if len(p.Dependencies) != 4 {
		t.Errorf("dependencies = %d, want 4 distinct references", len(p.Dependencies))
	}
	last := p.Steps[len(p.Steps)-1]
	if last.ID != "release" || last.When == nil || fmt.Sprint(last.When.Vars) != "[params.release steps.build.outputs.version steps.scan.outputs.findings]" {
		t.Errorf("release step condition = %+v", last.When)
	}
}

func TestEncodingIsCanonical(t *testing.T) {
	_, b := compile(t, sample(t, "build-test-release.yaml"))
	if bytes.ContainsAny(b, "\n\t") || bytes.Contains(b, []byte(": ")) {
		t.Fatal("canonical plan has insignificant whitespace")
	}
	p, err := plan.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	again, err := p.Encode()
	if err != nil || !bytes.Equal(again, b) {
		t.Fatalf("decode+encode is not the identity (%v)", err)
	}
}

func TestDecodeRejects(t *testing.T) {
	_, good := compile(t, sample(t, "fan-out-fan-in.yaml"))
	cases := map[string][]byte{
		"pretty printed":  bytes.ReplaceAll(good, []byte(`,"`), []byte(`, "`)),
		"unknown field":   bytes.Replace(good, []byte(`{"apiVersion"`), []byte(`{"extra":1,"apiVersion"`), 1),
		"trailing data":   append(bytes.Clone(good), []byte(" {}")...),
		"wrong version":   bytes.Replace(good, []byte(plan.APIVersion), []byte("ociwf.dev/plan/v9"), 1),
		"unknown need":    bytes.Replace(good, []byte(`"needs":["prepare"]`), []byte(`"needs":["prepares"]`), 1),
		"unpinned image":  bytes.Replace(good, []byte(`"image":"docker.io/library/alpine@sha256:`), []byte(`"image":"docker.io/library/alpine:3.20@sha256:`), 1),
		"not json":        []byte("apiVersion: x"),
		"empty":           nil,
		"wrong stage num": bytes.Replace(good, []byte(`"run":"cat /reports/*.xml > /out/junit.xml","stage":2`), []byte(`"run":"cat /reports/*.xml > /out/junit.xml","stage":1`), 1),
	}
	decodeRejects(t, good, cases)
}

// decodeRejects checks that Decode refuses every case, each an edit of
// the good plan, with errdef.ErrInvalid.
func decodeRejects(t *testing.T, good []byte, cases map[string][]byte) {
	t.Helper()
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if bytes.Equal(b, good) {
				t.Fatal("the case did not change the plan")
			}
			if _, err := plan.Decode(b); !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestOfflineRefusesTags(t *testing.T) {
	_, err := plan.Offline{}.Resolve(context.Background(), plan.KindImage, "alpine:3.20")
	if !errors.Is(err, errdef.ErrNotPinned) {
		t.Fatalf("err = %v, want ErrNotPinned", err)
	}
	d, err := plan.Offline{}.Resolve(context.Background(), plan.KindImage, "alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41")
	if err != nil || d.Pinned != "docker.io/library/alpine@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41" {
		t.Fatalf("pinned = %q, %v", d.Pinned, err)
	}
}

func FuzzDecode(f *testing.F) {
	for _, name := range []string{"build-test-release.yaml", "fan-out-fan-in.yaml"} {
		_, b := compile(f, sample(f, name))
		f.Add(b)
	}
	// A plan that records a sub-workflow's interface.
	parent := []byte("apiVersion: ociwf.dev/v1\nkind: Workflow\nmetadata: {name: p, version: 1.0.0}\nsteps:\n  - id: sub\n    uses: r.example.com/w:1\n    with: {n: \"2\"}\n")
	wf, err := dsl.Parse("p.yaml", parent)
	if err != nil {
		f.Fatal(err)
	}
	p, err := plan.Compile(context.Background(), wf, parent, pinned{&plan.Interface{Name: "w", Version: "1.0.0", Params: []plan.Param{{Name: "n", Type: "int", Enum: []any{int64(2)}}}}})
	if err != nil {
		f.Fatal(err)
	}
	b, err := p.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b)
	f.Add([]byte(`{"apiVersion":"ociwf.dev/plan/v1"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := plan.Decode(b)
		if err != nil {
			if !errors.Is(err, errdef.ErrInvalid) && !errors.Is(err, errdef.ErrTooLarge) {
				t.Fatalf("error of no class: %v", err)
			}
			return
		}
		// Whatever decodes is valid and re-encodes to the same bytes.
		again, err := p.Encode()
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted a plan that does not round-trip (%v)", err)
		}
	})
}

func benchmarkCompile(b *testing.B, steps int) {
	src := gen.Workflow(steps)
	b.SetBytes(int64(len(src)))
	b.ReportAllocs()
	for b.Loop() {
		wf, err := dsl.Parse("gen.yaml", src)
		if err != nil {
			b.Fatal(err)
		}
		p, err := plan.Compile(context.Background(), wf, src, plan.Offline{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := p.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCompile measures parse + validate + compile + canonical encoding.
func BenchmarkCompile100(b *testing.B) { benchmarkCompile(b, 100) }
func BenchmarkCompile1k(b *testing.B)  { benchmarkCompile(b, 1000) }
func BenchmarkCompile10k(b *testing.B) { benchmarkCompile(b, 10000) }

// BenchmarkCompile20k is the largest generated workflow within
// dsl.MaxSourceBytes; the generator's 50k steps are 10 MB.
func BenchmarkCompile20k(b *testing.B) { benchmarkCompile(b, 20000) }
