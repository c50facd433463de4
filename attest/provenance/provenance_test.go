package provenance_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	provv1 "github.com/in-toto/attestation/go/predicates/provenance/v1"
	slsa1 "github.com/in-toto/in-toto-golang/in_toto/slsa_provenance/v1"
	packageurl "github.com/package-url/packageurl-go"
	"github.com/santhosh-tekuri/jsonschema/v6"
	"google.golang.org/protobuf/encoding/protojson"

	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/sbom"
)

// pinned are the workflows that compile offline.
var pinned = []string{"build-test-release.yaml", "fan-out-fan-in.yaml"}

func slsaSchema(t *testing.T) *jsonschema.Schema { return attesttest.SLSASchema(t) }

func compile(t *testing.T, name string) *ociwf.Build {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: name})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const (
	sourceURI = "git+https://github.com/acme/workflows"
	sourceRef = "refs/heads/main"
	revision  = "7fd1a60b01f91b314f59955a4e4d4e80d8edf11d"
	builderID = "https://github.com/acme/workflows/.github/workflows/publish.yml@refs/heads/main"
	invokeID  = "https://github.com/acme/workflows/actions/runs/4242/attempts/1"
)

func fullOptions(name string) provenance.Options {
	// Times in a zone other than UTC and with sub-seconds: the predicate
	// must carry them in UTC, truncated to the second.
	zone := time.FixedZone("CEST", 2*60*60)
	return provenance.Options{
		BuilderID:      builderID,
		ToolVersion:    "v1.2.3",
		SourceURI:      sourceURI,
		SourceRef:      sourceRef,
		SourceRevision: revision,
		WorkflowPath:   "workflows/" + name,
		InvocationID:   invokeID,
		StartedOn:      time.Date(2025, 6, 1, 14, 0, 0, 250_000_000, zone),
		FinishedOn:     time.Date(2025, 6, 1, 14, 3, 7, 900_000_000, zone),
	}
}

func marshal(t *testing.T, pred *slsa1.ProvenancePredicate) []byte {
	t.Helper()
	raw, err := provenance.Marshal(pred)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// validateSchema checks raw against the transcribed SLSA v1 schema.
func validateSchema(schema *jsonschema.Schema, raw []byte) error {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return err
	}
	return schema.Validate(doc)
}

// validateProto checks raw with the in-toto attestation framework's own
// SLSA v1 protobuf binding: strict protojson parsing (unknown or misspelt
// fields are errors) and its Validate.
func validateProto(raw []byte) (*provv1.Provenance, error) {
	var p provv1.Provenance
	if err := protojson.Unmarshal(raw, &p); err != nil {
		return nil, err
	}
	return &p, p.Validate()
}

// predicate mirrors the specification's JSON, to read back what was written.
type predicate struct {
	BuildDefinition struct {
		BuildType          string `json:"buildType"`
		ExternalParameters struct {
			Source   map[string]string `json:"source"`
			Workflow map[string]string `json:"workflow"`
			Params   json.RawMessage   `json:"params"`
		} `json:"externalParameters"`
		ResolvedDependencies []descriptor `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails struct {
		Builder struct {
			ID      string            `json:"id"`
			Version map[string]string `json:"version"`
		} `json:"builder"`
		Metadata   map[string]string `json:"metadata"`
		Byproducts []descriptor      `json:"byproducts"`
	} `json:"runDetails"`
}

type descriptor struct {
	URI         string            `json:"uri"`
	Name        string            `json:"name"`
	Digest      map[string]string `json:"digest"`
	MediaType   string            `json:"mediaType"`
	Annotations map[string]string `json:"annotations"`
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// wantParams are the declared parameters' defaults of each pinned workflow.
var wantParams = map[string]string{
	"build-test-release.yaml": `{"go_version":"1.23","packages":["./..."],"release":false}`,
	"fan-out-fan-in.yaml":     `{"fail_fast":true,"shards":4}`,
}

func TestProvenanceValidatesAgainstSLSA1(t *testing.T) {
	schema := slsaSchema(t)
	for _, name := range pinned {
		t.Run(name, func(t *testing.T) {
			b := compile(t, name)
			opts := fullOptions(name)
			pred, err := provenance.Generate(b, opts)
			if err != nil {
				t.Fatal(err)
			}
			raw := marshal(t, pred)

			if err := validateSchema(schema, raw); err != nil {
				t.Fatalf("predicate does not validate against the SLSA v1 schema: %v\n%s", err, raw)
			}
			pb, err := validateProto(raw)
			if err != nil {
				t.Fatalf("in-toto SLSA v1 binding rejects the predicate: %v\n%s", err, raw)
			}
			// Strict parsing succeeded, so nothing was dropped; check that
			// what the binding read is what was meant.
			md := pb.GetRunDetails().GetMetadata()
			if md.GetInvocationId() != invokeID {
				t.Errorf("binding reads invocation ID %q", md.GetInvocationId())
			}
			if got := md.GetStartedOn().AsTime(); !got.Equal(time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)) {
				t.Errorf("binding reads startedOn %v", got)
			}
			if got := md.GetFinishedOn().AsTime(); !got.Equal(time.Date(2025, 6, 1, 12, 3, 7, 0, time.UTC)) {
				t.Errorf("binding reads finishedOn %v", got)
			}

			var got predicate
			if err := json.Unmarshal(raw, &got); err != nil {
				t.Fatal(err)
			}
			bd, rd := got.BuildDefinition, got.RunDetails
			if bd.BuildType != provenance.BuildType {
				t.Errorf("buildType %q, want %q", bd.BuildType, provenance.BuildType)
			}

			// externalParameters: source, workflow and params.
			ext := bd.ExternalParameters
			if want := map[string]string{"uri": sourceURI, "ref": sourceRef, "revision": revision}; !reflect.DeepEqual(ext.Source, want) {
				t.Errorf("externalParameters.source %v, want %v", ext.Source, want)
			}
			wantWF := map[string]string{"path": opts.WorkflowPath, "name": b.Plan.Workflow.Name, "version": b.Plan.Workflow.Version}
			if !reflect.DeepEqual(ext.Workflow, wantWF) {
				t.Errorf("externalParameters.workflow %v, want %v", ext.Workflow, wantWF)
			}
			if !jsonEqual(t, ext.Params, []byte(wantParams[name])) {
				t.Errorf("externalParameters.params %s, want %s", ext.Params, wantParams[name])
			}

			// resolvedDependencies: the DSL source, its git commit, then one
			// entry per plan dependency.
			deps := bd.ResolvedDependencies
			if len(deps) != 2+len(b.Plan.Dependencies) {
				t.Fatalf("%d resolved dependencies, want 2 + %d plan dependencies", len(deps), len(b.Plan.Dependencies))
			}
			if src := deps[0]; src.Name != opts.WorkflowPath || src.MediaType != ociwf.SourceMediaType ||
				!reflect.DeepEqual(src.Digest, map[string]string{"sha256": sha256Hex(b.Source)}) {
				t.Errorf("source dependency %+v, want %s with the sha256 of the source", src, opts.WorkflowPath)
			}
			if "sha256:"+sha256Hex(b.Source) != b.Plan.Source.Digest {
				t.Errorf("source digest disagrees with the plan's %s", b.Plan.Source.Digest)
			}
			if git := deps[1]; git.URI != sourceURI+"@"+sourceRef || !reflect.DeepEqual(git.Digest, map[string]string{"gitCommit": revision}) {
				t.Errorf("git dependency %+v", git)
			}
			for i, d := range b.Plan.Dependencies {
				checkPlanDependency(t, deps[2+i], d)
			}

			// runDetails.
			if rd.Builder.ID != builderID {
				t.Errorf("builder.id %q", rd.Builder.ID)
			}
			if want := map[string]string{"ociwf": "v1.2.3"}; !reflect.DeepEqual(rd.Builder.Version, want) {
				t.Errorf("builder.version %v", rd.Builder.Version)
			}
			wantMD := map[string]string{"invocationId": invokeID, "startedOn": "2025-06-01T12:00:00Z", "finishedOn": "2025-06-01T12:03:07Z"}
			if !reflect.DeepEqual(rd.Metadata, wantMD) {
				t.Errorf("metadata %v, want %v", rd.Metadata, wantMD)
			}
			wantBy := []descriptor{
				{Name: ociwf.PlanTitle, MediaType: ociwf.PlanMediaType, Digest: map[string]string{"sha256": sha256Hex(b.PlanJSON)}},
				{Name: ociwf.SBOMTitle, MediaType: sbom.MediaType, Digest: map[string]string{"sha256": sha256Hex(b.SBOM)}},
			}
			if !reflect.DeepEqual(rd.Byproducts, wantBy) {
				t.Errorf("byproducts %+v, want %+v", rd.Byproducts, wantBy)
			}
		})
	}
}

func checkPlanDependency(t *testing.T, got descriptor, d plan.Dependency) {
	t.Helper()
	algo, hexd, _ := strings.Cut(d.Digest, ":")
	if algo != "sha256" || len(hexd) != 64 {
		t.Fatalf("plan dependency %q has digest %q", d.Ref, d.Digest)
	}
	if got.Name != d.Pinned || !reflect.DeepEqual(got.Digest, map[string]string{"sha256": hexd}) {
		t.Errorf("dependency %+v, want name %s and sha256 %s", got, d.Pinned, hexd)
	}
	if want := map[string]string{"kind": string(d.Kind), "ref": d.Ref}; !reflect.DeepEqual(got.Annotations, want) {
		t.Errorf("dependency %s: annotations %v, want %v", d.Pinned, got.Annotations, want)
	}
	purl, err := packageurl.FromString(got.URI)
	if err != nil {
		t.Fatalf("dependency %s: uri %q is not a purl: %v", d.Pinned, got.URI, err)
	}
	repo, _, _ := strings.Cut(d.Pinned, "@")
	if purl.Type != packageurl.TypeOCI || purl.Version != d.Digest || purl.Qualifiers.Map()["repository_url"] != repo {
		t.Errorf("dependency %s: uri %q is not pkg:oci at %s in %s", d.Pinned, got.URI, d.Digest, repo)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

func TestZeroOptions(t *testing.T) {
	schema := slsaSchema(t)
	for _, name := range pinned {
		t.Run(name, func(t *testing.T) {
			b := compile(t, name)
			pred, err := provenance.Generate(b, provenance.Options{})
			if err != nil {
				t.Fatal(err)
			}
			raw := marshal(t, pred)
			if err := validateSchema(schema, raw); err != nil {
				t.Fatalf("predicate does not validate against the SLSA v1 schema: %v\n%s", err, raw)
			}
			if _, err := validateProto(raw); err != nil {
				t.Fatalf("in-toto SLSA v1 binding rejects the predicate: %v\n%s", err, raw)
			}
			if id := pred.RunDetails.Builder.ID; id != provenance.LocalBuilderID {
				t.Errorf("builder.id %q, want %q", id, provenance.LocalBuilderID)
			}
			if pred.RunDetails.Builder.Version != nil {
				t.Errorf("builder.version %v without a tool version", pred.RunDetails.Builder.Version)
			}
			var doc map[string]any
			if err := json.Unmarshal(raw, &doc); err != nil {
				t.Fatal(err)
			}
			bd := doc["buildDefinition"].(map[string]any)
			ext := bd["externalParameters"].(map[string]any)
			if _, ok := ext["source"]; ok {
				t.Errorf("externalParameters.source %v without source options", ext["source"])
			}
			if wf := ext["workflow"].(map[string]any); wf["path"] != nil || wf["name"] != b.Plan.Workflow.Name {
				t.Errorf("externalParameters.workflow %v", wf)
			}
			if md, ok := doc["runDetails"].(map[string]any)["metadata"]; ok {
				t.Errorf("runDetails.metadata %v without invocation ID or timestamps", md)
			}
			// Without a revision there is no git entry: the source, then the
			// plan dependencies.
			deps := pred.BuildDefinition.ResolvedDependencies
			if len(deps) != 1+len(b.Plan.Dependencies) {
				t.Fatalf("%d resolved dependencies, want 1 + %d", len(deps), len(b.Plan.Dependencies))
			}
			if deps[0].Name != ociwf.SourceTitle {
				t.Errorf("source dependency named %q, want %q", deps[0].Name, ociwf.SourceTitle)
			}
			for _, d := range deps {
				if _, ok := d.Digest["gitCommit"]; ok {
					t.Errorf("gitCommit dependency %+v without a revision", d)
				}
			}
		})
	}
}

// A git commit without a source URI is still a valid dependency: its digest
// identifies it.
func TestRevisionWithoutSourceURI(t *testing.T) {
	b := compile(t, pinned[0])
	pred, err := provenance.Generate(b, provenance.Options{SourceRevision: revision})
	if err != nil {
		t.Fatal(err)
	}
	raw := marshal(t, pred)
	if err := validateSchema(slsaSchema(t), raw); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if _, err := validateProto(raw); err != nil {
		t.Fatalf("%v\n%s", err, raw)
	}
	if git := pred.BuildDefinition.ResolvedDependencies[1]; git.URI != "" || git.Digest["gitCommit"] != revision {
		t.Errorf("git dependency %+v", git)
	}
}

// Both checks must be able to fail: predicates that break the specification
// are rejected by the schema, and those that break what the binding checks
// are rejected by it too.
func TestInvalidPredicatesAreRejected(t *testing.T) {
	schema := slsaSchema(t)
	b := compile(t, pinned[0])
	pred, err := provenance.Generate(b, fullOptions(pinned[0]))
	if err != nil {
		t.Fatal(err)
	}
	good := marshal(t, pred)

	cases := []struct {
		name  string
		edit  func(p map[string]any)
		proto bool // the binding rejects it too
	}{
		{"empty builder id", func(p map[string]any) {
			obj(p, "runDetails", "builder")["id"] = ""
		}, true},
		{"no builder", func(p map[string]any) {
			delete(obj(p, "runDetails"), "builder")
		}, true},
		{"relative builder id", func(p map[string]any) {
			obj(p, "runDetails", "builder")["id"] = "local"
		}, false},
		{"no buildType", func(p map[string]any) {
			delete(obj(p, "buildDefinition"), "buildType")
		}, true},
		{"no externalParameters", func(p map[string]any) {
			delete(obj(p, "buildDefinition"), "externalParameters")
		}, true},
		{"empty externalParameters", func(p map[string]any) {
			obj(p, "buildDefinition")["externalParameters"] = map[string]any{}
		}, true},
		{"no runDetails", func(p map[string]any) {
			delete(p, "runDetails")
		}, true},
		{"dependency with none of uri, digest, content", func(p map[string]any) {
			deps := obj(p, "buildDefinition")["resolvedDependencies"].([]any)
			deps[0] = map[string]any{"name": "workflow.yaml", "mediaType": ociwf.SourceMediaType}
		}, false},
		{"dependency with an empty digest set", func(p map[string]any) {
			deps := obj(p, "buildDefinition")["resolvedDependencies"].([]any)
			deps[0] = map[string]any{"digest": map[string]any{}}
		}, true},
		{"uppercase sha256", func(p map[string]any) {
			by := obj(p, "runDetails")["byproducts"].([]any)
			d := by[0].(map[string]any)["digest"].(map[string]any)
			d["sha256"] = strings.ToUpper(d["sha256"].(string))
		}, false},
		{"short sha256", func(p map[string]any) {
			by := obj(p, "runDetails")["byproducts"].([]any)
			by[0].(map[string]any)["digest"] = map[string]any{"sha256": "abcd"}
		}, true},
		{"content not base64", func(p map[string]any) {
			by := obj(p, "runDetails")["byproducts"].([]any)
			by[0].(map[string]any)["content"] = "not base64!"
		}, true},
		{"invocationID spelt as in-toto-golang spells it", func(p map[string]any) {
			md := obj(p, "runDetails", "metadata")
			md["invocationID"] = md["invocationId"]
			delete(md, "invocationId")
		}, true},
		{"timestamp not in UTC", func(p map[string]any) {
			obj(p, "runDetails", "metadata")["startedOn"] = "2025-06-01T14:00:00+02:00"
		}, false},
		{"timestamp not RFC 3339", func(p map[string]any) {
			obj(p, "runDetails", "metadata")["finishedOn"] = "June 1, 2025"
		}, true},
		{"unknown top-level field", func(p map[string]any) {
			p["materials"] = []any{}
		}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p map[string]any
			if err := json.Unmarshal(good, &p); err != nil {
				t.Fatal(err)
			}
			tc.edit(p)
			raw, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			if err := validateSchema(schema, raw); err == nil {
				t.Errorf("the schema accepts it:\n%s", raw)
			}
			if _, err := validateProto(raw); tc.proto && err == nil {
				t.Errorf("the in-toto binding accepts it:\n%s", raw)
			}
		})
	}

	// Extension fields, named <vendor>_<field>, are allowed anywhere.
	var p map[string]any
	if err := json.Unmarshal(good, &p); err != nil {
		t.Fatal(err)
	}
	obj(p, "runDetails", "builder")["ociwf_runner"] = "hosted"
	p["ociwf_note"] = map[string]any{"any": true}
	raw, _ := json.Marshal(p)
	if err := validateSchema(schema, raw); err != nil {
		t.Errorf("the schema rejects extension fields: %v", err)
	}
}

// obj walks p down the given keys to a nested object.
func obj(p map[string]any, keys ...string) map[string]any {
	for _, k := range keys {
		p = p[k].(map[string]any)
	}
	return p
}

// encoding/json writes in-toto-golang's "invocationID", which the
// specification spells "invocationId"; Marshal must write the latter and
// still read back into the in-toto-golang type.
func TestMarshalSpellsInvocationIdAsTheSpecification(t *testing.T) {
	b := compile(t, pinned[0])
	pred, err := provenance.Generate(b, fullOptions(pinned[0]))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := json.Marshal(pred)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(plain, []byte(`"invocationID"`)) {
		t.Skip("in-toto-golang now spells invocationId as the specification does; Marshal may be unnecessary")
	}
	if _, err := validateProto(plain); err == nil {
		t.Error("strict protojson accepts invocationID; this test no longer shows why Marshal exists")
	}

	raw := marshal(t, pred)
	if bytes.Contains(raw, []byte(`"invocationID"`)) || !bytes.Contains(raw, []byte(`"invocationId"`)) {
		t.Errorf("Marshal does not spell invocationId as the specification:\n%s", raw)
	}
	var back slsa1.ProvenancePredicate
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.RunDetails.BuildMetadata.InvocationID != invokeID {
		t.Errorf("invocation ID %q after a round trip", back.RunDetails.BuildMetadata.InvocationID)
	}
	if !back.RunDetails.BuildMetadata.StartedOn.Equal(*pred.RunDetails.BuildMetadata.StartedOn) {
		t.Errorf("startedOn %v after a round trip", back.RunDetails.BuildMetadata.StartedOn)
	}
	again, err := provenance.Marshal(&back)
	if err != nil {
		t.Fatal(err)
	}
	// externalParameters come back as a map, so compare as JSON values.
	if !jsonEqual(t, raw, again) {
		t.Errorf("Marshal is not stable across a round trip:\n%s\n%s", raw, again)
	}
}

func TestMarshalNil(t *testing.T) {
	if _, err := provenance.Marshal(nil); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("Marshal(nil): %v, want ErrInvalid", err)
	}
}

func TestGenerateIsDeterministic(t *testing.T) {
	b := compile(t, pinned[1])
	a, _ := provenance.Generate(b, fullOptions(pinned[1]))
	c, _ := provenance.Generate(b, fullOptions(pinned[1]))
	if !bytes.Equal(marshal(t, a), marshal(t, c)) {
		t.Error("two predicates of the same build and options differ")
	}
}

func TestGenerateErrors(t *testing.T) {
	if _, err := provenance.Generate(nil, provenance.Options{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("nil build: %v, want ErrInvalid", err)
	}
	if _, err := provenance.Generate(&ociwf.Build{}, provenance.Options{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Errorf("build without a plan: %v, want ErrInvalid", err)
	}
	b := compile(t, pinned[0])
	bad := *b.Plan
	bad.Dependencies = []plan.Dependency{{Kind: plan.KindImage, Ref: "alpine", Pinned: "docker.io/library/alpine@latest", Digest: "latest"}}
	b.Plan = &bad
	if _, err := provenance.Generate(b, provenance.Options{}); !errors.Is(err, errdef.ErrNotPinned) {
		t.Errorf("dependency without a digest: %v, want ErrNotPinned", err)
	}
}

func TestDetect(t *testing.T) {
	cases := []struct {
		name string
		env  map[string]string
		want provenance.Environment
	}{
		{
			name: "no CI",
			env:  map[string]string{"HOME": "/home/dev", "GITHUB_ACTIONS": "false", "GITLAB_CI": ""},
			want: provenance.Environment{},
		},
		{
			name: "GitHub Actions with GITHUB_WORKFLOW_REF",
			env: map[string]string{
				"GITHUB_ACTIONS":      "true",
				"GITHUB_SERVER_URL":   "https://github.com",
				"GITHUB_REPOSITORY":   "acme/workflows",
				"GITHUB_REF":          "refs/tags/v1.4.0",
				"GITHUB_SHA":          revision,
				"GITHUB_WORKFLOW_REF": "acme/workflows/.github/workflows/publish.yml@refs/tags/v1.4.0",
				"GITHUB_RUN_ID":       "4242",
				"GITHUB_RUN_ATTEMPT":  "2",
			},
			want: provenance.Environment{
				System:         "github-actions",
				BuilderID:      "https://github.com/acme/workflows/.github/workflows/publish.yml@refs/tags/v1.4.0",
				SourceURI:      "git+https://github.com/acme/workflows",
				SourceRef:      "refs/tags/v1.4.0",
				SourceRevision: revision,
				InvocationID:   "https://github.com/acme/workflows/actions/runs/4242/attempts/2",
			},
		},
		{
			name: "GitHub Actions without GITHUB_WORKFLOW_REF",
			env: map[string]string{
				"GITHUB_ACTIONS":    "true",
				"GITHUB_REPOSITORY": "acme/workflows",
				"GITHUB_REF":        "refs/heads/main",
				"GITHUB_SHA":        revision,
				"GITHUB_RUN_ID":     "4242",
			},
			want: provenance.Environment{
				System:         "github-actions",
				BuilderID:      "https://github.com/acme/workflows/actions",
				SourceURI:      "git+https://github.com/acme/workflows",
				SourceRef:      "refs/heads/main",
				SourceRevision: revision,
				InvocationID:   "https://github.com/acme/workflows/actions/runs/4242",
			},
		},
		{
			name: "GitHub Enterprise Server",
			env: map[string]string{
				"GITHUB_ACTIONS":      "true",
				"GITHUB_SERVER_URL":   "https://git.acme.example",
				"GITHUB_REPOSITORY":   "platform/workflows",
				"GITHUB_REF":          "refs/heads/main",
				"GITHUB_SHA":          revision,
				"GITHUB_WORKFLOW_REF": "platform/workflows/.github/workflows/publish.yml@refs/heads/main",
				"GITHUB_RUN_ID":       "7",
				"GITHUB_RUN_ATTEMPT":  "1",
			},
			want: provenance.Environment{
				System:         "github-actions",
				BuilderID:      "https://git.acme.example/platform/workflows/.github/workflows/publish.yml@refs/heads/main",
				SourceURI:      "git+https://git.acme.example/platform/workflows",
				SourceRef:      "refs/heads/main",
				SourceRevision: revision,
				InvocationID:   "https://git.acme.example/platform/workflows/actions/runs/7/attempts/1",
			},
		},
		{
			name: "GitLab CI tag pipeline",
			env: map[string]string{
				"GITLAB_CI":          "true",
				"CI_PROJECT_URL":     "https://gitlab.com/acme/workflows",
				"CI_RUNNER_ID":       "12270837",
				"CI_COMMIT_SHA":      revision,
				"CI_COMMIT_TAG":      "v1.4.0",
				"CI_COMMIT_REF_NAME": "v1.4.0",
				"CI_JOB_URL":         "https://gitlab.com/acme/workflows/-/jobs/8001",
			},
			want: provenance.Environment{
				System:         "gitlab-ci",
				BuilderID:      "https://gitlab.com/acme/workflows/-/runners/12270837",
				SourceURI:      "git+https://gitlab.com/acme/workflows",
				SourceRef:      "refs/tags/v1.4.0",
				SourceRevision: revision,
				InvocationID:   "https://gitlab.com/acme/workflows/-/jobs/8001",
			},
		},
		{
			name: "GitLab CI branch pipeline without a runner ID",
			env: map[string]string{
				"GITLAB_CI":          "true",
				"CI_PROJECT_URL":     "https://gitlab.com/acme/workflows",
				"CI_COMMIT_SHA":      revision,
				"CI_COMMIT_BRANCH":   "main",
				"CI_COMMIT_REF_NAME": "main",
				"CI_JOB_URL":         "https://gitlab.com/acme/workflows/-/jobs/8002",
			},
			want: provenance.Environment{
				System:         "gitlab-ci",
				BuilderID:      "https://gitlab.com/acme/workflows/-/jobs",
				SourceURI:      "git+https://gitlab.com/acme/workflows",
				SourceRef:      "refs/heads/main",
				SourceRevision: revision,
				InvocationID:   "https://gitlab.com/acme/workflows/-/jobs/8002",
			},
		},
		{
			// Merge request pipelines set neither CI_COMMIT_TAG nor
			// CI_COMMIT_BRANCH.
			name: "GitLab CI merge request pipeline falls back to the ref name",
			env: map[string]string{
				"GITLAB_CI":          "true",
				"CI_PROJECT_URL":     "https://gitlab.com/acme/workflows",
				"CI_RUNNER_ID":       "5",
				"CI_COMMIT_SHA":      revision,
				"CI_COMMIT_REF_NAME": "feature/retry",
				"CI_JOB_URL":         "https://gitlab.com/acme/workflows/-/jobs/8003",
			},
			want: provenance.Environment{
				System:         "gitlab-ci",
				BuilderID:      "https://gitlab.com/acme/workflows/-/runners/5",
				SourceURI:      "git+https://gitlab.com/acme/workflows",
				SourceRef:      "feature/retry",
				SourceRevision: revision,
				InvocationID:   "https://gitlab.com/acme/workflows/-/jobs/8003",
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := provenance.Detect(func(k string) string { return tc.env[k] })
			if got != tc.want {
				t.Errorf("Detect:\n got %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// What Detect finds in CI makes a predicate that passes both checks.
func TestDetectedEnvironmentMakesValidProvenance(t *testing.T) {
	schema := slsaSchema(t)
	b := compile(t, pinned[0])
	for _, env := range []map[string]string{
		{"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/workflows", "GITHUB_REF": "refs/heads/main", "GITHUB_SHA": revision,
			"GITHUB_WORKFLOW_REF": "acme/workflows/.github/workflows/publish.yml@refs/heads/main", "GITHUB_RUN_ID": "1", "GITHUB_RUN_ATTEMPT": "1"},
		{"GITLAB_CI": "true", "CI_PROJECT_URL": "https://gitlab.com/acme/workflows", "CI_RUNNER_ID": "5", "CI_COMMIT_SHA": revision,
			"CI_COMMIT_BRANCH": "main", "CI_JOB_URL": "https://gitlab.com/acme/workflows/-/jobs/1"},
	} {
		e := provenance.Detect(func(k string) string { return env[k] })
		pred, err := provenance.Generate(b, provenance.Options{
			BuilderID: e.BuilderID, SourceURI: e.SourceURI, SourceRef: e.SourceRef,
			SourceRevision: e.SourceRevision, InvocationID: e.InvocationID,
		})
		if err != nil {
			t.Fatal(err)
		}
		raw := marshal(t, pred)
		if err := validateSchema(schema, raw); err != nil {
			t.Errorf("%s: %v\n%s", e.System, err, raw)
		}
		if _, err := validateProto(raw); err != nil {
			t.Errorf("%s: %v\n%s", e.System, err, raw)
		}
	}
}

// Decode reads back what Generate and Marshal write, externalParameters
// in the provenance package's own types.
func TestDecodeReadsMarshal(t *testing.T) {
	b := compile(t, "build-test-release.yaml")
	raw := marshal(t, mustGenerate(t, b, fullOptions("build-test-release.yaml")))
	p, err := provenance.Decode(raw)
	if err != nil {
		t.Fatal(err)
	}
	if p.External.Source == nil || p.External.Source.URI != sourceURI || p.External.Source.Ref != sourceRef || p.External.Source.Revision != revision {
		t.Fatalf("source %+v", p.External.Source)
	}
	if p.External.Workflow.Path != "workflows/build-test-release.yaml" || p.External.Workflow.Name != b.Plan.Workflow.Name {
		t.Fatalf("workflow %+v", p.External.Workflow)
	}
	if p.RunDetails.Builder.ID != builderID || p.RunDetails.BuildMetadata.InvocationID != invokeID {
		t.Fatalf("run details %+v", p.RunDetails)
	}
	if len(p.BuildDefinition.ResolvedDependencies) != 2+len(b.Plan.Dependencies) {
		t.Fatalf("%d resolved dependencies", len(p.BuildDefinition.ResolvedDependencies))
	}
	for _, bad := range []string{`[]`, `{"buildDefinition":{"externalParameters":{"source":"git+https://x"}}}`, `not json`} {
		if _, err := provenance.Decode([]byte(bad)); !errors.Is(err, errdef.ErrInvalid) {
			t.Fatalf("Decode(%s): %v, want ErrInvalid", bad, err)
		}
	}
}

// FromEnv fills what flags left empty from $OCIWF_BUILDER_ID and the CI's
// variables; SourceURL drops SLSA's git+ prefix.
func TestFromEnv(t *testing.T) {
	gha := map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "acme/workflows", "GITHUB_SHA": revision,
		"GITHUB_REF": sourceRef, "GITHUB_RUN_ID": "4242", "GITHUB_RUN_ATTEMPT": "1",
	}
	cases := []struct {
		name string
		env  map[string]string
		in   provenance.Options
		want provenance.Options
	}{
		{"nothing", nil, provenance.Options{}, provenance.Options{}},
		{"builder variable", map[string]string{"OCIWF_BUILDER_ID": "https://b"}, provenance.Options{}, provenance.Options{BuilderID: "https://b"}},
		{"set wins", map[string]string{"OCIWF_BUILDER_ID": "https://b"}, provenance.Options{BuilderID: "https://flag"}, provenance.Options{BuilderID: "https://flag"}},
		{"github actions", gha, provenance.Options{SourceRef: "refs/tags/v1"}, provenance.Options{
			BuilderID: "https://github.com/acme/workflows/actions", SourceURI: sourceURI, SourceRef: "refs/tags/v1",
			SourceRevision: revision, InvocationID: invokeID,
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := provenance.FromEnv(func(k string) string { return c.env[k] }, c.in)
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got %+v\nwant %+v", got, c.want)
			}
		})
	}
	if got := (provenance.Options{SourceURI: sourceURI}).SourceURL(); got != "https://github.com/acme/workflows" {
		t.Fatalf("SourceURL %q", got)
	}
	if got := (provenance.Options{SourceURI: "https://example.com/x"}).SourceURL(); got != "https://example.com/x" {
		t.Fatalf("SourceURL %q", got)
	}
}

func mustGenerate(t *testing.T, b *ociwf.Build, opts provenance.Options) *slsa1.ProvenancePredicate {
	t.Helper()
	pred, err := provenance.Generate(b, opts)
	if err != nil {
		t.Fatal(err)
	}
	return pred
}
