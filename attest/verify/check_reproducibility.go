package verify

import (
	"context"
	"errors"

	"ociwf.dev/ociwf"
)

// reproduce recompiles the DSL layer offline with the plan's own
// resolution and compares the result with the plan layer byte for byte
// (ociwf.Reproduce), with the outcome of each condition's type check
// kept across the Verifier's verifications.
func (r *run) reproduce(ctx context.Context) error {
	want := "plan " + r.wf.Manifest.Plan.Digest.String()
	err := ociwf.ReproduceWith(ctx, r.wf.Source, r.wf.PlanJSON, r.wf.Plan, ociwf.ReproduceOptions{Conditions: r.v.conds})
	var irr *ociwf.IrreproducibleError
	switch {
	case errors.As(err, &irr) && irr.Err != nil:
		return r.rep.fail(CheckReproducibility, "the DSL layer does not compile with the plan's resolution", want, irr.Err.Error())
	case errors.As(err, &irr):
		return r.rep.fail(CheckReproducibility, "the DSL layer recompiles to a different plan", want, "plan "+irr.Recompiled.String())
	case err != nil:
		return err
	}
	r.rep.pass(CheckReproducibility, "the DSL layer recompiles offline to the identical plan %s", r.wf.Manifest.Plan.Digest)
	return nil
}
