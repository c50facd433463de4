package plan_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

func TestParseValue(t *testing.T) {
	cases := []struct {
		typ, in string
		want    any // nil: an error
	}{
		{"string", "", ""},
		{"string", " a b ", " a b "},
		{"int", "42", int64(42)},
		{"int", "-7", int64(-7)},
		{"int", "0", int64(0)},
		{"int", "+7", nil},
		{"int", "08", nil},
		{"int", "8.0", nil},
		{"int", "0x10", nil},
		{"int", "abc", nil},
		{"int", "99999999999999999999", nil},
		{"bool", "true", true},
		{"bool", "false", false},
		{"bool", "True", nil},
		{"bool", "1", nil},
		{"bool", "yes", nil},
		{"list", `["a", "b"]`, []string{"a", "b"}},
		{"list", `[]`, []string{}},
		{"list", `null`, nil},
		{"list", `a,b`, nil},
		{"list", `[1]`, nil},
		{"list", `["a"] x`, nil},
		{"float", "1", nil},
	}
	for _, c := range cases {
		t.Run(c.typ+" "+c.in, func(t *testing.T) {
			got, err := plan.ParseValue(c.typ, c.in)
			if c.want == nil {
				if !errors.Is(err, errdef.ErrInvalid) {
					t.Fatalf("ParseValue = %#v, %v; want ErrInvalid", got, err)
				}
				return
			}
			if err != nil || fmt.Sprintf("%#v", got) != fmt.Sprintf("%#v", c.want) {
				t.Fatalf("ParseValue = %#v, %v; want %#v", got, err, c.want)
			}
		})
	}
}

func TestBindParams(t *testing.T) {
	params := []plan.Param{
		{Name: "env", Type: "string", Required: true, Enum: []any{"staging", "prod"}},
		{Name: "shards", Type: "int", Default: int64(4), Enum: []any{int64(2), int64(4), int64(8)}},
		{Name: "dry", Type: "bool"},
		{Name: "who", Type: "list"},
	}
	got, err := plan.BindParams(params, map[string]string{"env": "prod", "who": `["ann"]`})
	if err != nil {
		t.Fatal(err)
	}
	if want := `map[string]interface {}{"dry":false, "env":"prod", "shards":4, "who":[]string{"ann"}}`; fmt.Sprintf("%#v", got) != want {
		t.Errorf("bound %#v, want %s", got, want)
	}
	for name, c := range map[string]struct {
		values map[string]string
		err    string
	}{
		"missing required": {map[string]string{}, `param "env" is required`},
		"unknown":          {map[string]string{"env": "prod", "envs": "x"}, `no param "envs"`},
		"enum":             {map[string]string{"env": "dev"}, `param env: "dev" is not one of "staging", "prod"`},
		"int enum":         {map[string]string{"env": "prod", "shards": "3"}, `param shards: 3 is not one of 2, 4, 8`},
		"type":             {map[string]string{"env": "prod", "dry": "no"}, `param dry: "no" is not a bool (true or false)`},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := plan.BindParams(params, c.values)
			if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("err = %v, want ErrInvalid saying %s", err, c.err)
			}
		})
	}
}

// pinned resolves every reference to one digest and records iface for
// every workflow, as a registry resolver reads it from the sub-workflow.
type pinned struct{ iface *plan.Interface }

func (r pinned) Resolve(_ context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	name, _, err := plan.SplitRef(kind, ref)
	if err != nil {
		return plan.Dependency{}, err
	}
	const dg = "sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41"
	d := plan.Dependency{Kind: kind, Ref: ref, Pinned: name + "@" + dg, Digest: dg}
	if kind == plan.KindWorkflow {
		d.Workflow = r.iface
	}
	return d, nil
}

// TestDecodeChecksWith decodes plans whose recorded sub-workflow interface
// and with disagree, or whose params break the DSL's rules.
func TestDecodeChecksWith(t *testing.T) {
	src := []byte(`apiVersion: ociwf.dev/v1
kind: Workflow
metadata: {name: parent, version: 1.0.0}
params:
  - {name: n, type: int, default: 2, enum: [2, 3]}
steps:
  - id: sub
    uses: registry.example.com/workflows/child:1.0.0
    with: {shards: "4"}
`)
	wf, err := dsl.Parse("parent.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	iface := &plan.Interface{Name: "child", Version: "1.0.0", Params: []plan.Param{{Name: "shards", Type: "int", Enum: []any{int64(2), int64(4)}}}}
	p, err := plan.Compile(context.Background(), wf, src, pinned{iface})
	if err != nil {
		t.Fatal(err)
	}
	good, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := plan.Decode(good); err != nil {
		t.Fatalf("decode the compiled plan: %v", err)
	}
	if !bytes.Contains(good, []byte(`"workflow":{"name":"child","params":[{"enum":[2,4],"name":"shards","type":"int"}],"version":"1.0.0"}`)) {
		t.Fatalf("plan does not record the sub-workflow's interface: %s", good)
	}
	cases := map[string][]byte{
		"with not in enum":   bytes.Replace(good, []byte(`"with":{"shards":"4"}`), []byte(`"with":{"shards":"3"}`), 1),
		"with unknown param": bytes.Replace(good, []byte(`"with":{"shards":"4"}`), []byte(`"with":{"shard":"4"}`), 1),
		"with not an int":    bytes.Replace(good, []byte(`"with":{"shards":"4"}`), []byte(`"with":{"shards":"x"}`), 1),
		"required unbound":   bytes.Replace(good, []byte(`"type":"int"}],"version":"1.0.0"}`), []byte(`"type":"int"},{"name":"zone","required":true,"type":"string"}],"version":"1.0.0"}`), 1),
		"unnamed interface":  bytes.Replace(good, []byte(`"workflow":{"name":"child"`), []byte(`"workflow":{"name":""`), 1),
		"param type":         bytes.Replace(good, []byte(`"name":"n","type":"int"`), []byte(`"name":"n","type":"float"`), 1),
		"default type":       bytes.Replace(good, []byte(`"default":2`), []byte(`"default":"2"`), 1),
		"default not enum":   bytes.Replace(good, []byte(`"default":2`), []byte(`"default":4`), 1),
	}
	decodeRejects(t, good, cases)
}
