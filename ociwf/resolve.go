package ociwf

import (
	"context"
	"fmt"
	"strings"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

// Repositories opens registry repositories; *target.Opener is one, with its
// credentials, transport and retries.
type Repositories interface {
	// Repository returns a client for the repository ref names.
	Repository(ref registry.Reference) (*remote.Repository, error)
}

// RegistryResolver is the plan.Resolver that pins dependencies against
// their registries for Compile.
type RegistryResolver struct {
	repos Repositories
}

// NewRegistryResolver returns a RegistryResolver that reaches registries
// through repos.
func NewRegistryResolver(repos Repositories) *RegistryResolver {
	return &RegistryResolver{repos: repos}
}

// Resolve pins a dependency for plan.Compile. References that carry a digest
// are taken as they are; tags are resolved against their registry. A uses
// reference must resolve to an ociwf workflow artifact; its plan layer is
// read (digest checked, decoded strictly) and its interface recorded in
// Dependency.Workflow, so the compiler checks with against its params.
func (r *RegistryResolver) Resolve(ctx context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	name, dg, err := plan.SplitRef(kind, ref)
	if err != nil {
		return plan.Dependency{}, err
	}
	if dg == "" || kind == plan.KindWorkflow {
		parsed, err := registry.ParseReference(name)
		if err != nil {
			return plan.Dependency{}, fmt.Errorf("%s %q: %v: %w", kind, ref, err, errdef.ErrInvalid)
		}
		repo, err := r.repos.Repository(parsed)
		if err != nil {
			return plan.Dependency{}, err
		}
		lookup := dg.String()
		if dg == "" {
			lookup = tagOf(ref)
		}
		if kind == plan.KindWorkflow {
			desc, m, err := FetchManifest(ctx, repo, lookup)
			if err != nil {
				return plan.Dependency{}, fmt.Errorf("workflow %q: %w", ref, err)
			}
			// The sub-workflow's own plan says which params its with binds.
			b, err := FetchAll(ctx, repo, m.Plan, MaxPlanBytes)
			if err != nil {
				return plan.Dependency{}, fmt.Errorf("workflow %q: plan layer: %w", ref, err)
			}
			sub, err := plan.Decode(b)
			if err != nil {
				return plan.Dependency{}, fmt.Errorf("workflow %q: plan layer %s: %w", ref, m.Plan.Digest, err)
			}
			return plan.Dependency{Kind: kind, Ref: ref, Pinned: name + "@" + desc.Digest.String(), Digest: desc.Digest.String(), Workflow: sub.Interface()}, nil
		}
		desc, err := repo.Resolve(ctx, lookup)
		if err != nil {
			return plan.Dependency{}, fmt.Errorf("image %q: resolve %s: %w", ref, lookup, err)
		}
		dg = desc.Digest
	}
	return plan.Dependency{Kind: kind, Ref: ref, Pinned: name + "@" + dg.String(), Digest: dg.String()}, nil
}

// tagOf returns the tag of a reference, or "latest" when it has none.
func tagOf(ref string) string {
	last := ref[strings.LastIndex(ref, "/")+1:]
	if i := strings.LastIndex(last, ":"); i >= 0 {
		return last[i+1:]
	}
	return "latest"
}
