package govern_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/lifecycle"
)

// CheckUses refuses a dependency whose chain records a publication but
// that no trusted signer signed, and accepts it once signed.
func TestCheckUsesNeedsAWorkflowSignature(t *testing.T) {
	ctx := context.Background()
	e := extension(t, lifecycle.Roles{}, accessory.RegistryOptions{})
	subj := e.push(e.host+"/wf/sub:1.0.0", nil)
	ref := subj.Repository + "@" + subj.Digest.String()
	if _, err := e.recorder(verify.Options{}).Transition(ctx, ref, keys.signer["alice"], lifecycle.Published, govern.EventOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &plan.Plan{Dependencies: []plan.Dependency{{Kind: plan.KindWorkflow, Ref: e.host + "/wf/sub:1.0.0", Pinned: ref, Digest: subj.Digest.String()}}}
	_, err := govern.CheckUses(ctx, e.verifier(verify.Options{}), p, govern.UsesOptions{})
	var se *lifecycle.StateError
	if !errors.Is(err, errdef.ErrLifecycle) || !errors.As(err, &se) || !strings.Contains(err.Error(), "no signature by a trusted workflow signer") {
		t.Fatalf("unsigned published dependency: %v", err)
	}
	e.sign(subj)
	if _, err := govern.CheckUses(ctx, e.verifier(verify.Options{}), p, govern.UsesOptions{}); err != nil {
		t.Fatalf("signed: %v", err)
	}
}
