package govern_test

import (
	"context"
	"errors"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// A published version is quarantined by sec1 (named in the quarantine
// role), refused by Fetch, not released by bob (no release role) nor to
// another state, and released by rm back to published.
func TestQuarantineAndRelease(t *testing.T) {
	ctx := context.Background()
	e := extension(t, lifecycle.Roles{Quarantine: []string{"sec1"}, Release: []string{"rm"}}, accessory.RegistryOptions{})
	ref := e.host + "/wf/q:1.0.0"
	subj := e.push(ref, nil)
	e.sign(subj)
	rec := e.recorder(verify.Options{})
	v := e.verifier(verify.Options{})
	s := keys.signer

	_, err := rec.Release(ctx, ref, s["rm"], govern.EventOptions{})
	refused(t, "releasing a published version", err, "only a quarantined version")
	_, err = rec.Quarantine(ctx, ref, s["bob"], "suspicious", govern.EventOptions{})
	refused(t, "bob quarantining", err, "is allowed to quarantine")
	if _, err := rec.Quarantine(ctx, ref, s["sec1"], "", govern.EventOptions{}); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("a quarantine without a reason: %v", err)
	}
	must(t, "quarantine", lifecycle.Quarantined)(rec.Quarantine(ctx, ref, s["sec1"], "blobs check failed", govern.EventOptions{Actor: "monitor"}))
	if res, err := rec.Quarantine(ctx, ref, s["sec1"], "again", govern.EventOptions{}); err != nil || !res.Existing {
		t.Fatalf("a second quarantine: %v %+v", err, res)
	}
	_, _, err = v.Fetch(ctx, ref)
	var se *lifecycle.StateError
	if !errors.Is(err, errdef.ErrLifecycle) || !errors.As(err, &se) || se.State != lifecycle.Quarantined || se.Restriction != "cannot_be_used" {
		t.Fatalf("Fetch of a quarantined version: %v", err)
	}
	_, err = rec.Release(ctx, ref, s["bob"], govern.EventOptions{})
	refused(t, "bob releasing", err, "is allowed to release")
	_, err = rec.Transition(ctx, ref, s["rm"], lifecycle.Deprecated, govern.EventOptions{Reason: "x"})
	refused(t, "releasing to deprecated", err, "released to the state it was in before the quarantine, published")
	must(t, "release", lifecycle.Published)(rec.Release(ctx, ref, s["rm"], govern.EventOptions{}))
	if _, _, err := v.Fetch(ctx, ref); err != nil {
		t.Fatalf("Fetch after the release: %v", err)
	}
}
