package verify

import (
	"bytes"
	"context"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/plan"
)

// resolution resolves references as the plan recorded them; references
// it does not list must carry their own digest.
type resolution map[string]plan.Dependency

func (rs resolution) Resolve(ctx context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	if d, ok := rs[string(kind)+" "+ref]; ok {
		return d, nil
	}
	return plan.Offline{}.Resolve(ctx, kind, ref)
}

// reproduce recompiles the DSL layer offline with the plan's own
// resolution and compares the result with the plan layer byte for byte.
func (r *run) reproduce(ctx context.Context) error {
	rs := resolution{}
	for _, d := range r.wf.Plan.Dependencies {
		rs[string(d.Kind)+" "+d.Ref] = d
	}
	want := r.wf.Manifest.Plan.Digest.String()
	b, err := ociwf.Compile(ctx, r.wf.Source, ociwf.CompileOptions{File: ociwf.SourceTitle, Resolver: rs, PlanOnly: true})
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return r.rep.fail(CheckReproducibility, "the DSL layer does not compile with the plan's resolution", "plan "+want, err.Error())
	}
	if got := b.PlanJSON; !bytes.Equal(got, r.wf.PlanJSON) {
		return r.rep.fail(CheckReproducibility, "the DSL layer recompiles to a different plan", "plan "+want, "plan "+digest.FromBytes(got).String())
	}
	r.rep.pass(CheckReproducibility, "the DSL layer recompiles offline to the identical plan %s", want)
	return nil
}
