package dsl_test

import (
	"bytes"
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

// TestRepeatedProblemsAtEachStep checks that a bad reference, a bad
// condition or a malformed field that several steps share is reported at
// each of them, with the step's own position and name.
func TestRepeatedProblemsAtEachStep(t *testing.T) {
	src := []byte(`apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: x, version: 1.0.0}
steps:
  - {id: a, image: "Bad Image", needs: [b, [x]]}
  - {id: b, image: "Bad Image", when: "nope >"}
  - {id: c, image: alpine, when: "nope >"}
  - {id: d, uses: "not a ref", when: "1"}
  - {id: e, uses: "not a ref", when: "1", timeout: [1]}
`)
	_, err := dsl.Parse("r.yaml", src)
	var list dsl.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	var got []string
	for _, e := range list {
		got = append(got, e.Error())
	}
	want := []string{
		`r.yaml:5:44: steps[0].needs[1] must be a string`,
		`r.yaml:9:52: steps[4].timeout must be a string`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("structural errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	src = bytes.Replace(bytes.Replace(src, []byte(", [x]"), nil, 1), []byte(", timeout: [1]"), nil, 1)
	_, err = dsl.Parse("r.yaml", src)
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	got = got[:0]
	for _, e := range list {
		got = append(got, e.Error())
	}
	for _, w := range []string{
		`r.yaml:5:20: step "a": invalid image reference "Bad Image"`,
		`r.yaml:6:20: step "b": invalid image reference "Bad Image"`,
		`r.yaml:8:19: step "d": invalid workflow reference "not a ref"`,
		`r.yaml:9:19: step "e": invalid workflow reference "not a ref"`,
	} {
		if !strings.Contains(strings.Join(got, "\n"), w) {
			t.Errorf("errors lack %s", w)
		}
	}

	src = bytes.ReplaceAll(src, []byte(`"Bad Image"`), []byte("alpine"))
	src = bytes.ReplaceAll(src, []byte(`"not a ref"`), []byte("r.example.com/w:1"))
	_, err = dsl.Parse("r.yaml", src)
	if !errors.As(err, &list) {
		t.Fatalf("err = %v", err)
	}
	got = got[:0]
	for _, e := range list {
		got = append(got, e.Error())
	}
	want = []string{
		`r.yaml:6:34: step "b": invalid condition: 1:7: Syntax error: mismatched input '<EOF>'`,
		`r.yaml:7:34: step "c": invalid condition: 1:7: Syntax error: mismatched input '<EOF>'`,
		`r.yaml:8:44: step "d": condition must be a bool, not int`,
		`r.yaml:9:44: step "e": condition must be a bool, not int`,
	}
	if len(got) != len(want) {
		t.Fatalf("condition errors:\n%s", strings.Join(got, "\n"))
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("condition error %d = %s, want %s…", i, got[i], want[i])
		}
	}
}
