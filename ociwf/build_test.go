package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content/memory"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
)

// TestCompilePlanOnly checks that a plan-only compile gives the very plan a
// full compile gives, without the SBOM and the config.
func TestCompilePlanOnly(t *testing.T) {
	ctx := context.Background()
	for _, name := range offlineSamples {
		t.Run(name, func(t *testing.T) {
			src := readSample(t, name)
			full, err := ociwf.Compile(ctx, src, ociwf.CompileOptions{File: name})
			if err != nil {
				t.Fatal(err)
			}
			only, err := ociwf.Compile(ctx, src, ociwf.CompileOptions{File: name, PlanOnly: true})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(only.PlanJSON, full.PlanJSON) {
				t.Fatal("a plan-only compile gives another plan")
			}
			if only.SBOM != nil || only.Config != nil {
				t.Fatalf("a plan-only compile made an SBOM (%d bytes) or a config (%d bytes)", len(only.SBOM), len(only.Config))
			}
			if _, err := ociwf.Pack(ctx, memory.New(), only, ociwf.PackOptions{}); !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("pack of a plan-only build: err = %v, want ErrInvalid", err)
			}
		})
	}
}

// TestPushRecordsTheCompileTime checks that the time Compile was given is
// the one the artifact records, without passing it to Push again.
func TestPushRecordsTheCompileTime(t *testing.T) {
	ctx := context.Background()
	created := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	cases := []struct {
		name string
		pack ociwf.PackOptions
		want time.Time
	}{
		{name: "from the build", want: created},
		{name: "pack options win", pack: ociwf.PackOptions{Created: created.Add(time.Hour)}, want: created.Add(time.Hour)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := ociwf.Compile(ctx, readSample(t, "build-test-release.yaml"), ociwf.CompileOptions{Created: created})
			if err != nil {
				t.Fatal(err)
			}
			if !b.Created.Equal(created) {
				t.Fatalf("Build.Created = %v, want %v", b.Created, created)
			}
			dst := places(t)["oci-layout"]
			if _, err := ociwf.Push(ctx, dst.Storage, b, "1.0.0", ociwf.PushOptions{PackOptions: c.pack}); err != nil {
				t.Fatal(err)
			}
			_, m, err := ociwf.FetchManifest(ctx, dst.Storage, "1.0.0")
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Annotations[ocispec.AnnotationCreated]; got != c.want.Format(time.RFC3339) {
				t.Fatalf("%s = %q, want %s", ocispec.AnnotationCreated, got, c.want.Format(time.RFC3339))
			}
		})
	}
}
