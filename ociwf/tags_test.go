package ociwf_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
)

// stored returns the media types of the parts of the artifact b packs to
// that dst holds.
func stored(t *testing.T, dst oras.ReadOnlyTarget, b *ociwf.Build, opts ociwf.PackOptions) []string {
	t.Helper()
	ctx := context.Background()
	mem := memory.New()
	// Pack refuses oversized builds; lay out the descriptors by hand.
	descs := []ocispec.Descriptor{
		{MediaType: ociwf.SourceMediaType, Digest: digest.FromBytes(b.Source), Size: int64(len(b.Source))},
		{MediaType: ociwf.PlanMediaType, Digest: digest.FromBytes(b.PlanJSON), Size: int64(len(b.PlanJSON))},
		{MediaType: ociwf.SBOMMediaType, Digest: digest.FromBytes(b.SBOM), Size: int64(len(b.SBOM))},
		{MediaType: ociwf.ConfigMediaType, Digest: digest.FromBytes(b.Config), Size: int64(len(b.Config))},
	}
	if desc, err := ociwf.Pack(ctx, mem, b, opts); err == nil {
		descs = append(descs, desc)
	}
	var found []string
	for _, d := range descs {
		if ok, err := dst.Exists(ctx, d); err == nil && ok {
			found = append(found, d.MediaType)
		}
	}
	return found
}

// TestPushRefusesReservedTags checks that a version tag cosign reserves for
// a digest's accessories is refused before anything is written.
func TestPushRefusesReservedTags(t *testing.T) {
	ctx := context.Background()
	hex := strings.Repeat("a", 64)
	reserved := []string{"sha256-" + hex, "sha256-" + hex + ".sig", "sha256-" + hex + ".att", "sha256-" + hex + ".sbom", "SHA256-" + strings.ToUpper(hex) + ".SIG"}
	invalid := []string{"bad tag", ".hidden", strings.Repeat("t", 129)}
	for kind, dst := range places(t) {
		t.Run(kind, func(t *testing.T) {
			b := compileSample(t, "build-test-release.yaml")
			for _, tag := range append(reserved, invalid...) {
				_, err := ociwf.Push(ctx, dst.Storage, b, tag, ociwf.PushOptions{})
				if !errors.Is(err, errdef.ErrInvalidReference) || !errors.Is(err, errdef.ErrInvalid) {
					t.Fatalf("push to %q: err = %v, want ErrInvalidReference", tag, err)
				}
				if _, err := dst.Storage.Resolve(ctx, tag); err == nil {
					t.Fatalf("tag %q was written", tag)
				}
			}
			if found := stored(t, dst.Storage, b, ociwf.PackOptions{}); len(found) != 0 {
				t.Fatalf("refused pushes wrote %v", found)
			}
			// TagOnce refuses the same names.
			mem := memory.New()
			desc, err := ociwf.Pack(ctx, mem, b, ociwf.PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := oras.CopyGraph(ctx, mem, dst.Storage, desc, oras.DefaultCopyGraphOptions); err != nil {
				t.Fatal(err)
			}
			for _, tag := range reserved {
				if err := ociwf.TagOnce(ctx, dst.Storage, mem, desc, tag); !errors.Is(err, errdef.ErrInvalidReference) {
					t.Fatalf("TagOnce %q: err = %v, want ErrInvalidReference", tag, err)
				}
			}
		})
	}
}
