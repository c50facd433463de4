package verify_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

func TestVersionsListsStatesAndBoundsTags(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, newKeys(t))
	repo := f.host + "/wf/versions"
	pol := trust.KeyPolicy(f.pub, repo, trust.KeyPolicyOptions{})
	deprecated := f.release(t, repo+":1.0.0", recipe{})
	f.record(t, repo+":1.0.0", pol, lifecycle.Deprecated)
	draft := f.release(t, repo+":0.9.0", recipe{unsigned: true, build: rebuild(t, func(p *plan.Plan) { p.Workflow.Version = "0.9.0" })})
	// The same signed digest under a second tag, and tags that are not
	// versions.
	f.copyTag(t, repo+":1.0.0", repo+":stable")
	f.copyTag(t, repo+":1.0.0", repo+":sha256-12ab")

	v := f.verifier(t, pol, verify.Options{})
	list, err := v.Versions(ctx, repo, verify.VersionsOptions{Concurrency: 2})
	if err != nil {
		t.Fatal(err)
	}
	if list.Truncated || list.MaxTags != verify.DefaultMaxVersions || len(list.Versions) != 3 {
		t.Fatalf("Versions = %+v", list)
	}
	want := []struct {
		tag    string
		digest string
		state  lifecycle.State
		event  bool
	}{
		{"0.9.0", draft.Digest.String(), lifecycle.Draft, false},
		{"1.0.0", deprecated.Digest.String(), lifecycle.Deprecated, true},
		{"stable", deprecated.Digest.String(), lifecycle.Deprecated, true},
	}
	for i, w := range want {
		got := list.Versions[i]
		if got.Tag != w.tag || got.Digest != w.digest || got.State != w.state || (got.LastEvent != nil) != w.event || got.Error != "" {
			t.Fatalf("version %d = %+v, want %+v", i, got, w)
		}
		if w.event == (got.Created != nil) {
			t.Fatalf("version %d: created %v with last event %v", i, got.Created, got.LastEvent)
		}
	}
	if c := list.Versions[0].Created; !c.Equal(time.Unix(0, 0)) || len(list.Versions[0].Signers) != 0 || len(list.Versions[1].Signers) != 1 {
		t.Fatalf("versions %+v", list.Versions)
	}

	// A bound on the tags read truncates the list.
	list, err = v.Versions(ctx, repo, verify.VersionsOptions{MaxTags: 2})
	if err != nil || !list.Truncated || list.MaxTags != 2 || len(list.Versions) != 2 || list.Versions[1].Tag != "1.0.0" {
		t.Fatalf("Versions with MaxTags 2 = %+v, %v", list, err)
	}

	// A rolled-back chain is listed as failed, the others still answer.
	store := lifecycle.NewMemoryStore()
	key, err := f.verifier(t, pol, verify.Options{}).StateKey(ctx, deprecated.String())
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Save(ctx, key, lifecycle.Head{Sequence: 3, ID: "sha256:" + strings.Repeat("e", 64), State: lifecycle.Archived}); err != nil {
		t.Fatal(err)
	}
	list, err = f.verifier(t, pol, verify.Options{StateStore: store}).Versions(ctx, repo, verify.VersionsOptions{})
	if err != nil || len(list.Versions) != 3 {
		t.Fatalf("Versions with a rollback = %+v, %v", list, err)
	}
	if got := list.Versions[1]; !got.Failed || !strings.Contains(got.Error, "lifecycle rollback") || got.Digest != deprecated.Digest.String() {
		t.Fatalf("rolled-back version = %+v", got)
	}
	if got := list.Versions[0]; got.Failed || got.Error != "" || got.State != lifecycle.Draft {
		t.Fatalf("draft next to a rollback = %+v", got)
	}

	// A version, or a repository nothing trusts, is refused.
	if _, err := v.Versions(ctx, repo+":1.0.0", verify.VersionsOptions{}); !errors.Is(err, errdef.ErrInvalidReference) {
		t.Fatalf("Versions of a tag: %v", err)
	}
	if _, err := v.Versions(ctx, f.host+"/wf/other", verify.VersionsOptions{}); !errors.Is(err, trust.ErrNoScope) {
		t.Fatalf("Versions of an untrusted repository: %v", err)
	}
}
