package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/registrytest"
)

// TestFetchAllClassifiesContent checks the one verified read: content that
// is not what its descriptor says is a *ContentError naming the problem,
// matching ErrVerification (ErrTooLarge for a size over the limit, and
// not found for a missing blob), whether the registry or the bytes betray it.
func TestFetchAllClassifiesContent(t *testing.T) {
	ctx := context.Background()
	data := []byte("the blob as it was pushed\n")
	cases := []struct {
		name    string
		tamper  func([]byte) []byte                         // the stored blob, edited on disk
		desc    func(ocispec.Descriptor) ocispec.Descriptor // what is asked for
		limit   int64
		problem string // "" means the read succeeds
		is      error
		isNot   error
	}{
		{name: "intact", limit: 1 << 10},
		{name: "changed in storage", tamper: func(b []byte) []byte { c := bytes.Clone(b); c[3] ^= 0x20; return c },
			limit: 1 << 10, problem: "re-hashes to another digest", is: errdef.ErrVerification},
		{name: "truncated in storage", tamper: func(b []byte) []byte { return b[:len(b)-5] },
			limit: 1 << 10, problem: "differs from its descriptor", is: errdef.ErrVerification},
		{name: "grown in storage", tamper: func(b []byte) []byte { return append(bytes.Clone(b), "more"...) },
			limit: 1 << 10, problem: "differs from its descriptor", is: errdef.ErrVerification},
		{name: "over the limit", limit: 4, problem: "is too large", is: errdef.ErrTooLarge, isNot: errdef.ErrVerification},
		{name: "missing", desc: func(d ocispec.Descriptor) ocispec.Descriptor {
			return content.NewDescriptorFromBytes(d.MediaType, []byte("never pushed"))
		},
			limit: 1 << 10, problem: "is missing from the registry", is: orasdef.ErrNotFound, isNot: errdef.ErrVerification},
		{name: "invalid digest", desc: func(d ocispec.Descriptor) ocispec.Descriptor { d.Digest = "sha256:nothex"; return d },
			limit: 1 << 10, problem: "has an invalid digest", is: errdef.ErrVerification},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			repo := open(t, registrytest.NewAt(t, root)+"/workflows/fetch", false).Storage
			desc, err := oras.PushBytes(ctx, repo, "application/octet-stream", data)
			if err != nil {
				t.Fatal(err)
			}
			if c.tamper != nil {
				path := blobPath(root, desc.Digest)
				if err := os.WriteFile(path, c.tamper(data), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if c.desc != nil {
				desc = c.desc(desc)
			}
			got, err := ociwf.FetchAll(ctx, repo, desc, c.limit)
			if c.problem == "" {
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("FetchAll = %q, %v; want the pushed bytes", got, err)
				}
				return
			}
			var ce *ociwf.ContentError
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want a *ContentError", err)
			}
			if ce.Problem != c.problem || ce.Expected == "" || ce.Actual == "" {
				t.Errorf("ContentError = %+v, want problem %q with expected and actual", ce, c.problem)
			}
			if !errors.Is(err, c.is) {
				t.Errorf("err = %v, want it to match %v", err, c.is)
			}
			if c.isNot != nil && errors.Is(err, c.isNot) {
				t.Errorf("err = %v matches %v", err, c.isNot)
			}
			if !strings.Contains(err.Error(), c.problem) {
				t.Errorf("err = %q does not say %q", err, c.problem)
			}
		})
	}
}

// TestTagOnceReadsTheManifestVerified checks that TagOnce reads the
// manifest it tags through the verified reader: a source that serves other
// bytes for the digest fails with ErrVerification and leaves no tag.
func TestTagOnceReadsTheManifestVerified(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "layout")
	src := open(t, dir, true).Storage
	b := compileSample(t, "build-test-release.yaml")
	desc, err := ociwf.Pack(ctx, src, b, ociwf.PackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded())
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[len(raw)/2] ^= 0x20
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := open(t, registrytest.New(t)+"/workflows/tag", false).Storage
	if err := ociwf.TagOnce(ctx, dst, src, desc, "1.0.0"); !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("TagOnce from a source serving other bytes: err = %v, want ErrVerification", err)
	}
	if _, err := dst.Resolve(ctx, "1.0.0"); err == nil {
		t.Fatal("the refused TagOnce left a tag")
	}
}
