package publish_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// A publication under a policy that requires two approvals is refused,
// leaving no signature and no tag, until the approvals are recorded; it
// then records the chain's publication event with its attestations, and
// --supersedes deprecates the version it replaces.
func TestPublishGatesOnTheLifecycle(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	dir := t.TempDir()
	aKey, aPub := attesttest.KeyPair(t, dir, "alice")
	bKey, bPub := attesttest.KeyPair(t, dir, "bob")
	cKey, cPub := attesttest.KeyPair(t, dir, "carol")
	repo := registrytest.New(t) + "/team/build"
	pol := &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{
		Name: "team", RegistryScopes: []string{repo},
		Signers: []trust.Signer{{Name: "ci", Key: f.pub}},
		Lifecycle: trust.LifecycleRules{
			Signers: []trust.Signer{{Name: "alice", Key: aPub}, {Name: "bob", Key: bPub}, {Name: "carol", Key: cPub}},
			Roles:   lifecycle.Roles{Submit: []string{"alice"}, Approve: lifecycle.Quorum{Signers: []string{"bob", "carol"}, Threshold: 2}},
		},
	}}}
	v, err := verify.New(pol, f.o, verify.Options{StateStore: lifecycle.NewMemoryStore()})
	if err != nil {
		t.Fatal(err)
	}
	reg := accessory.NewRegistry(f.o, accessory.RegistryOptions{})
	rec, err := govern.New(v, reg, govern.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, subj := attesttest.Push(t, f.o, repo+":draft", "build-test-release.yaml")
	pinned := subj.Repository + "@" + subj.Digest.String()
	gated := publish.Options{Tag: "1.4.0", Lifecycle: &publish.Lifecycle{Recorder: publish.Fixed(rec), Actor: "ci"}}

	// No review: refused, nothing signed, no tag.
	if _, err := f.publishDigest(t, repo, subj.Digest, accessory.TagScheme, gated); !errors.Is(err, errdef.ErrLifecycle) || !strings.Contains(err.Error(), "publication needs 2 approvals") {
		t.Fatalf("publish without review: %v", err)
	}
	if sigs, atts := f.stored(t, repo, subj.Digest); sigs != 0 || atts != 0 {
		t.Fatalf("refused publication stored %d signatures, %d attestations", sigs, atts)
	}
	if _, ok := f.tagged(t, repo, "1.4.0"); ok {
		t.Fatal("refused publication tagged")
	}
	// Submitted and approved once: still refused.
	if _, err := rec.Transition(ctx, pinned, attesttest.Signer(t, aKey), lifecycle.Review, govern.EventOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Decide(ctx, pinned, attesttest.Signer(t, bKey), lifecycle.Approve, govern.ApprovalOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.publishDigest(t, repo, subj.Digest, accessory.TagScheme, gated); !errors.Is(err, errdef.ErrLifecycle) || !strings.Contains(err.Error(), "the version has 1") {
		t.Fatalf("publish with one approval: %v", err)
	}
	if _, ok := f.tagged(t, repo, "1.4.0"); ok {
		t.Fatal("refused publication tagged")
	}
	// Approved: published, with the event in the chain after the review.
	if _, err := rec.Decide(ctx, pinned, attesttest.Signer(t, cKey), lifecycle.Approve, govern.ApprovalOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := f.publishDigest(t, repo, subj.Digest, accessory.TagScheme, gated)
	if err != nil {
		t.Fatal(err)
	}
	st, err := v.Lifecycle(ctx, repo+":1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if st.State != lifecycle.Published || len(st.Chain) != 2 || st.Chain[1].ID != res.Event || st.Chain[1].Event.Actor != "ci" {
		t.Fatalf("after publication: %+v", st.Status)
	}
	if _, rep, err := v.Verify(ctx, repo+":1.4.0"); err != nil || !rep.Verified {
		t.Fatalf("verify: %v %+v", err, rep)
	}
	// A rerun records nothing new.
	_, before := f.stored(t, repo, subj.Digest)
	if res, err = f.publishDigest(t, repo, subj.Digest, accessory.TagScheme, gated); err != nil || res.Event != "" {
		t.Fatalf("rerun: %v %+v", err, res)
	}
	if _, after := f.stored(t, repo, subj.Digest); after != before {
		t.Fatalf("rerun stored %d attestations, had %d", after, before)
	}

	// The next version supersedes it: published after its own review,
	// and the old one deprecated with a pointer to the new one.
	_, subj2 := attesttest.Push(t, f.o, repo+":draft-next", "fan-out-fan-in.yaml")
	pinned2 := subj2.Repository + "@" + subj2.Digest.String()
	if _, err := rec.Transition(ctx, pinned2, attesttest.Signer(t, aKey), lifecycle.Review, govern.EventOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{bKey, cKey} {
		if _, err := rec.Decide(ctx, pinned2, attesttest.Signer(t, k), lifecycle.Approve, govern.ApprovalOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	next, err := f.publishDigest(t, repo, subj2.Digest, accessory.TagScheme, publish.Options{Tag: "1.4.1",
		Lifecycle: &publish.Lifecycle{Recorder: publish.Fixed(rec), Supersedes: repo + ":1.4.0"}})
	if err != nil {
		t.Fatal(err)
	}
	if next.Superseded == nil || next.Superseded.State != lifecycle.Deprecated {
		t.Fatalf("superseded: %+v", next.Superseded)
	}
	old, err := v.Lifecycle(ctx, repo+":1.4.0")
	if err != nil {
		t.Fatal(err)
	}
	if _, replacement := old.Reason(); old.State != lifecycle.Deprecated || replacement != next.Reference {
		t.Fatalf("old version: %s, replacement %q, want %s", old.State, replacement, next.Reference)
	}
}
