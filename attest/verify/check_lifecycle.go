package verify

import (
	"context"
	"fmt"

	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// lifecycle asks the lifecycle source, if any, and applies the scope's
// rules.
func (r *run) lifecycle(ctx context.Context) error {
	l := r.v.opts.Lifecycle
	if l == nil {
		r.rep.skip(CheckLifecycle, "no lifecycle source configured")
		return nil
	}
	state, err := l.State(ctx, r.subj)
	if err != nil {
		return fmt.Errorf("verify %s: lifecycle state: %w", r.subj, err)
	}
	switch r.scope.Lifecycle.For(lifecycle.State(state)) {
	case trust.Deny:
		return r.rep.fail(CheckLifecycle, "trust policy "+r.scope.Name+" denies workflows in state "+state, "a state the policy allows", state)
	case trust.Warn:
		r.rep.warn(CheckLifecycle, "%s is %s (trust policy %s warns)", r.subj, state, r.scope.Name)
	default:
		r.rep.pass(CheckLifecycle, "state %s allowed", state)
	}
	return nil
}
