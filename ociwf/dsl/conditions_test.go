package dsl_test

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
)

// Versions of one workflow share their conditions: with a Conditions
// cache, the second parse type-checks none of them again, and parses to
// the same workflow, condition errors included, as Parse does.
func TestParseWithConditionsReuses(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", "build-test-release.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := dsl.Parse("a.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	c := dsl.NewConditions(0)
	for i, ver := range []string{"1.0.0", "1.0.1"} {
		s := strings.Replace(string(src), "version: ", "version: "+ver+"-", 1)
		got, err := dsl.ParseWith("a.yaml", []byte(s), dsl.ParseOptions{Conditions: c})
		if err != nil {
			t.Fatal(err)
		}
		for j := range got.Steps {
			if !reflect.DeepEqual(got.Steps[j].WhenVars, want.Steps[j].WhenVars) {
				t.Fatalf("parse %d, step %s: reads %v, want %v", i, got.Steps[j].ID, got.Steps[j].WhenVars, want.Steps[j].WhenVars)
			}
		}
		if c.Len() != 1 {
			t.Fatalf("parse %d: %d conditions kept, want 1", i, c.Len())
		}
	}
	// A condition type-checks against the variables declared for it: the
	// same text under other declarations is compiled again.
	bad := []byte("apiVersion: ociwf.dev/v1\nkind: Workflow\nmetadata: {name: x, version: 1.0.0}\nparams: [{name: release, type: string}]\nsteps:\n  - {id: a, image: alpine, when: params.release}\n")
	_, err = dsl.ParseWith("b.yaml", bad, dsl.ParseOptions{Conditions: c})
	_, plain := dsl.Parse("b.yaml", bad)
	if err == nil || plain == nil || err.Error() != plain.Error() {
		t.Fatalf("string param as condition: got %v, want %v", err, plain)
	}
	if c.Len() != 2 {
		t.Fatalf("%d conditions kept, want 2", c.Len())
	}
	_, err = dsl.ParseWith("b.yaml", bad, dsl.ParseOptions{Conditions: c})
	if err == nil || err.Error() != plain.Error() {
		t.Fatalf("cached condition error: got %v, want %v", err, plain)
	}
}
