package registryext

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/manifest/ocischema"
	"github.com/distribution/distribution/v3/registry/storage"
	"github.com/distribution/distribution/v3/registry/storage/driver/inmemory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/immutability"
)

// Moving a protected tag through the tag service answers as a manifest
// PUT by tag does: the same rule, the same message.
func TestTagServiceAppliesTheTagRules(t *testing.T) {
	ctx := t.Context()
	sig := "sha256-" + strings.Repeat("a", 64) + ".sig"
	for _, tc := range []struct {
		name      string
		tag       string
		prev      []string // layer contents the tag names first
		next      []string // what it is moved to
		wantRule  string
		wantError string // "" means the move is allowed
	}{
		{"immutable moved", "1.0.0", []string{"a"}, []string{"b"}, "semver", "and names %prev, not %next; push under a new tag"},
		{"immutable same digest", "1.0.0", []string{"a"}, []string{"a"}, "", ""},
		{"append-only drops a layer", sig, []string{"a", "b"}, []string{"a"}, "cosign-accessories", "the new manifest drops " + digest.FromString("b").String() + " of %prev; keep every existing entry"},
		{"append-only adds a layer", sig, []string{"a"}, []string{"a", "b"}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo := middlewareRepository(t, ctx)
			prev := storeManifest(t, ctx, repo, tc.prev)
			next := storeManifest(t, ctx, repo, tc.next)
			ts := repo.Tags(ctx)
			if err := ts.Tag(ctx, tc.tag, prev); err != nil {
				t.Fatalf("first tag: %v", err)
			}
			st := &requestState{}
			err := ts.Tag(context.WithValue(ctx, stateKey{}, st), tc.tag, next)
			if tc.wantError == "" {
				if err != nil {
					t.Fatalf("move: %v", err)
				}
				return
			}
			want := strings.NewReplacer("%prev", prev.Digest.String(), "%next", next.Digest.String()).Replace(tc.wantError)
			d := st.denied()
			if err == nil || d == nil {
				t.Fatalf("move: err %v, denial %v; want a denial", err, d)
			}
			if d.Rule != tc.wantRule || !strings.HasSuffix(d.Message, want) {
				t.Errorf("denial rule %q message %q; want rule %q, message ending %q", d.Rule, d.Message, tc.wantRule, want)
			}
		})
	}
}

// middlewareRepository returns repository test/a of an in-memory storage,
// wrapped in ociwf's middleware with the default rules.
func middlewareRepository(t *testing.T, ctx context.Context) distribution.Repository {
	t.Helper()
	d := inmemory.New()
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		t.Fatal(err)
	}
	name, err := reference.WithName("test/a")
	if err != nil {
		t.Fatal(err)
	}
	base, err := reg.Repository(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	shared := &protection{rules: immutability.Default(), log: slog.New(slog.DiscardHandler), metrics: newMetrics(), referrers: &referrers{d: d}}
	repo, err := newRepository(ctx, base, map[string]any{OptionProtection: shared})
	if err != nil {
		t.Fatal(err)
	}
	return repo
}

// storeManifest stores an image manifest with one layer per content and
// returns its descriptor.
func storeManifest(t *testing.T, ctx context.Context, repo distribution.Repository, layers []string) v1.Descriptor {
	t.Helper()
	bs := repo.Blobs(ctx)
	config, err := bs.Put(ctx, v1.MediaTypeImageConfig, []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	m := ocischema.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest, Config: config}
	for _, l := range layers {
		desc, err := bs.Put(ctx, v1.MediaTypeImageLayer, []byte(l))
		if err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, desc)
	}
	dm, err := ocischema.FromStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dgst, err := ms.Put(ctx, dm)
	if err != nil {
		t.Fatal(err)
	}
	_, payload, _ := dm.Payload()
	return v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: dgst, Size: int64(len(payload))}
}
