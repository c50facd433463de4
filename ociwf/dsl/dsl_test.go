package dsl_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
)

func TestHugeDocumentIsRejectedUnread(t *testing.T) {
	src := []byte("apiVersion: ociwf.dev/v1\n# " + strings.Repeat("x", dsl.MaxSourceBytes))
	_, err := dsl.Parse("huge.yaml", src)
	if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("err = %v", err)
	}
}

func TestErrorsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: ociwf.dev/v1\nkind: Workflow\nmetadata: {name: x, version: 1.0.0}\nsteps:\n")
	for i := 0; i < 100; i++ {
		b.WriteString("  - {id: s, bogus: 1}\n")
	}
	_, err := dsl.Parse("many.yaml", []byte(b.String()))
	var list dsl.ErrorList
	if !errors.As(err, &list) || len(list) != dsl.MaxErrors {
		t.Fatalf("got %d errors, want %d: %v", len(list), dsl.MaxErrors, err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "workflows", "*.yaml"))
	bad, _ := filepath.Glob(filepath.Join("..", "..", "testdata", "workflows", "invalid", "*.yaml"))
	for _, name := range append(files, bad...) {
		if b, err := os.ReadFile(name); err == nil && len(b) < 8<<10 {
			f.Add(b)
		}
	}
	f.Add([]byte("a: &a [*a]"))
	f.Fuzz(func(t *testing.T, src []byte) {
		wf, err := dsl.Parse("fuzz.yaml", src)
		if err != nil {
			var list dsl.ErrorList
			if !errors.As(err, &list) || len(list) == 0 || len(list) > dsl.MaxErrors {
				t.Fatalf("error is not a bounded ErrorList: %v", err)
			}
			return
		}
		// A parsed workflow is complete and its stages cover every step.
		n := 0
		for _, st := range wf.Stages() {
			n += len(st)
		}
		if n != len(wf.Steps) || len(wf.Steps) == 0 {
			t.Fatalf("stages cover %d of %d steps", n, len(wf.Steps))
		}
	})
}
