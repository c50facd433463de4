package dsl_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"go.yaml.in/yaml/v3"

	"ociwf.dev/ociwf/dsl"
)

func TestSchemaAgreesWithParser(t *testing.T) {
	c := jsonschema.NewCompiler()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(dsl.Schema))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.AddResource("workflow.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	schema, err := c.Compile("workflow.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	check := func(path string) error {
		src, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := yaml.Unmarshal(src, &v); err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(j))
		if err != nil {
			t.Fatal(err)
		}
		return schema.Validate(inst)
	}
	valid, _ := filepath.Glob("../../testdata/workflows/*.yaml")
	if len(valid) < 5 {
		t.Fatalf("found %d valid samples, want at least 5", len(valid))
	}
	for _, f := range valid {
		if err := check(f); err != nil {
			t.Errorf("%s: valid sample fails the schema: %v", f, err)
		}
	}
	for _, name := range []string{"unknown-field", "bad-version", "bad-api-version", "both-image-uses", "bad-default", "uses-env-outputs"} {
		if check(filepath.Join("../../testdata/workflows/invalid", name+".yaml")) == nil {
			t.Errorf("%s: invalid sample passes the schema", name)
		}
	}
}
