package sbom_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	packageurl "github.com/package-url/packageurl-go"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/sbom"
)

const schemaDir = "../../testdata/schemas/cyclonedx"

func cyclonedxSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, name := range []string{"bom-1.6.schema.json", "spdx.schema.json", "jsf-0.82.schema.json"} {
		f, err := os.Open(filepath.Join(schemaDir, name))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("http://cyclonedx.org/schema/"+name, doc); err != nil {
			t.Fatal(err)
		}
	}
	c.AssertFormat()
	s, err := c.Compile("http://cyclonedx.org/schema/bom-1.6.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func planOf(t *testing.T, name string) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := dsl.Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	p, err := plan.Compile(context.Background(), wf, src, plan.Offline{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSBOMValidatesAgainstCycloneDX16(t *testing.T) {
	schema := cyclonedxSchema(t)
	broken, _ := jsonschema.UnmarshalJSON(strings.NewReader(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"bogus","name":"x"}]}`))
	if schema.Validate(broken) == nil {
		t.Fatal("the schema accepts a component of an unknown type; the validation is not working")
	}
	for _, name := range []string{"build-test-release.yaml", "fan-out-fan-in.yaml", "generated-200.yaml"} {
		t.Run(name, func(t *testing.T) {
			p := planOf(t, name)
			for _, opts := range []sbom.Options{{}, {Created: time.Unix(1700000000, 0), ToolVersion: "v1.2.3"}} {
				b, err := sbom.Generate(p, "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", opts)
				if err != nil {
					t.Fatal(err)
				}
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.Validate(doc); err != nil {
					t.Fatalf("SBOM does not validate against CycloneDX 1.6: %v", err)
				}
				var bom struct {
					SpecVersion string `json:"specVersion"`
					Components  []struct {
						PURL string `json:"purl"`
					} `json:"components"`
				}
				if err := json.Unmarshal(b, &bom); err != nil {
					t.Fatal(err)
				}
				if bom.SpecVersion != "1.6" {
					t.Errorf("specVersion %q", bom.SpecVersion)
				}
				distinct := map[string]bool{}
				for _, d := range p.Dependencies {
					distinct[d.Pinned] = true
				}
				if len(bom.Components) != len(distinct) {
					t.Errorf("%d components for %d pinned dependencies", len(bom.Components), len(distinct))
				}
				for _, c := range bom.Components {
					purl, err := packageurl.FromString(c.PURL)
					if err != nil || purl.Type != packageurl.TypeOCI || !strings.HasPrefix(purl.Version, "sha256:") || purl.Qualifiers.Map()["repository_url"] == "" {
						t.Errorf("purl %q is not a digest-pinned pkg:oci purl with a repository_url (%v)", c.PURL, err)
					}
				}
			}
		})
	}
}

func TestSBOMIsDeterministic(t *testing.T) {
	p := planOf(t, "build-test-release.yaml")
	a, _ := sbom.Generate(p, "sha256:00", sbom.Options{})
	b, _ := sbom.Generate(p, "sha256:00", sbom.Options{})
	if !bytes.Equal(a, b) || bytes.Contains(a, []byte(`"timestamp"`)) {
		t.Fatal("SBOM bytes differ between runs or carry a wall-clock timestamp")
	}
	c, _ := sbom.Generate(p, "sha256:00", sbom.Options{Created: time.Unix(0, 0).Add(time.Hour)})
	if !bytes.Contains(c, []byte(`"timestamp":"1970-01-01T01:00:00Z"`)) {
		t.Fatalf("pinned timestamp not recorded")
	}
}
