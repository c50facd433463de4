package plan_test

import (
	"context"
	"testing"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/internal/gen"
	"ociwf.dev/ociwf/plan"
)

// TestCompileGolden pins the encoded plans of the sample workflows and of
// generated ones: the same input must keep compiling to the same bytes, so
// the digest of each plan is fixed here.
func TestCompileGolden(t *testing.T) {
	sub := pinned{&plan.Interface{Name: "w", Version: "1.0.0", Params: []plan.Param{
		{Name: "release", Type: "bool", Default: false},
		{Name: "shards", Type: "int", Default: int64(4), Enum: []any{int64(4), int64(8)}},
	}}}
	cases := []struct {
		name string
		src  []byte
		r    plan.Resolver
		want string
	}{
		{"build-test-release.yaml", sample(t, "build-test-release.yaml"), plan.Offline{}, "sha256:436abdab13367e30c62ecb0094b4f97d521a3b3f791ae5f5d8eefb36ae672c00"},
		{"fan-out-fan-in.yaml", sample(t, "fan-out-fan-in.yaml"), plan.Offline{}, "sha256:3f1cbe2f30018022165887d5dfc924031a00111a4b81bdae3af54bc9b2971b88"},
		{"generated-200.yaml", sample(t, "generated-200.yaml"), plan.Offline{}, "sha256:4abf06f01b32ff5a94f771e89f95b14ead5af641e9cfc0e0305dd5cac8307bea"},
		{"conditional-deploy.yaml", sample(t, "conditional-deploy.yaml"), pinned{}, "sha256:abf55b1c7c2929ff0a187fa511272d399d2df588ba39051644ccf076cbce4bf1"},
		{"nested-uses.yaml", sample(t, "nested-uses.yaml"), pinned{}, "sha256:a256533e4981d79c6b5d429dd278cc011b1ecc2b4096c2352a9db243c4c901a2"},
		{"nested-uses.yaml with interface", sample(t, "nested-uses.yaml"), sub, "sha256:4e481a3b3491276db1e181c0f035911260a4e9f730bc3dae38c8a4b70b694958"},
		{"example", []byte(exampleWorkflow), plan.Offline{}, "sha256:4297ce351c2e19239afa1892febd1603ce4edfb5878603ded821fe3f60c0c5f6"},
		{"gen 1000", gen.Workflow(1000), plan.Offline{}, "sha256:b10c59cbb78892a222aba21b481e944156ac4a3ac162c0c2104cb816047e22bc"},
		{"gen 3000", gen.Workflow(3000), plan.Offline{}, "sha256:323a54c3f7366c7b1067055631ababe01d4ac69dbebf8e7021b35d644efff409"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			wf, err := dsl.Parse("wf.yaml", c.src)
			if err != nil {
				t.Fatal(err)
			}
			p, err := plan.Compile(context.Background(), wf, c.src, c.r)
			if err != nil {
				t.Fatal(err)
			}
			b, err := p.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := digest.FromBytes(b).String(); got != c.want {
				t.Errorf("plan digest = %s, want %s (%d bytes)", got, c.want, len(b))
			}
			if _, err := plan.Decode(b); err != nil {
				t.Errorf("decode: %v", err)
			}
		})
	}
}
