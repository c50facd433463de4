package accessory_test

import (
	"context"
	"errors"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
)

// lying resolves every reference to one descriptor, as a registry that
// answers a digest with another manifest does.
type lying struct{ desc ocispec.Descriptor }

func (l lying) Resolve(context.Context, string) (ocispec.Descriptor, error) { return l.desc, nil }

func TestResolveSubject(t *testing.T) {
	ctx := context.Background()
	o := attesttest.Opener(t)
	repo := registrytest.New(t) + "/wf/subject"
	_, pushed := attesttest.Push(t, o, repo+":1.4.0", "build-test-release.yaml")
	other := digest.FromString("another manifest")
	cases := []struct {
		name    string
		ref     string
		want    accessory.Subject
		wantErr error
	}{
		{"tag", repo + ":1.4.0", accessory.Subject{Repository: repo, Digest: pushed.Digest, Tag: "1.4.0"}, nil},
		{"digest", repo + "@" + pushed.Digest.String(), accessory.Subject{Repository: repo, Digest: pushed.Digest}, nil},
		{"no tag or digest", repo, accessory.Subject{}, errdef.ErrInvalidReference},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src, err := o.OpenReadOnly(ctx, c.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, desc, err := accessory.ResolveSubject(ctx, src.Storage, src.Ref)
			if !errors.Is(err, c.wantErr) || (c.wantErr == nil && err != nil) {
				t.Fatalf("error %v, want %v", err, c.wantErr)
			}
			if got != c.want || (err == nil && desc.Digest != pushed.Digest) {
				t.Fatalf("got %+v (%s), want %+v", got, desc.Digest, c.want)
			}
		})
	}
	// A digest the registry answers with another manifest fails, with the
	// descriptor it answered.
	ref := target.Ref{Name: repo, Reference: pushed.Digest.String()}
	_, desc, err := accessory.ResolveSubject(ctx, lying{ocispec.Descriptor{Digest: other}}, ref)
	if !errors.Is(err, errdef.ErrVerification) || desc.Digest != other {
		t.Fatalf("lying registry: %v %s", err, desc.Digest)
	}
	// Publishing names the subject by the tag it applies.
	if got := accessory.NewSubject(target.Ref{Name: repo, Reference: "2.0.0"}, pushed.Digest); got != (accessory.Subject{Repository: repo, Digest: pushed.Digest, Tag: "2.0.0"}) {
		t.Fatalf("NewSubject %+v", got)
	}
}
