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
