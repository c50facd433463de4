package lifecycle_test

import (
	"errors"
	"testing"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
)

// monitorRoles: alice signs workflows; mon, the integrity monitor's key,
// may quarantine; rm may release.
func monitorRoles() lifecycle.Roles {
	return lifecycle.Roles{Quarantine: []string{"mon"}, Release: []string{"rm"}}
}

// A published version is quarantined by the monitor's key, refused while
// quarantined, and released by the release role back to published; a
// deprecated one goes back to deprecated.
func TestQuarantineAndRelease(t *testing.T) {
	for _, before := range []lifecycle.State{lifecycle.Published, lifecycle.Deprecated} {
		t.Run(string(before), func(t *testing.T) {
			c := newChain(t)
			c.next(lifecycle.Published, "alice")
			if before == lifecycle.Deprecated {
				c.next(lifecycle.Deprecated, "alice")
			}
			q := c.next(lifecycle.Quarantined, "mon")
			st := c.evaluate(monitorRoles())
			if st.State != lifecycle.Quarantined || st.Last().ID != q.ID || st.State.Restriction() != "cannot_be_used" || st.State.Executable() {
				t.Fatalf("after the quarantine: %+v", st)
			}
			c.next(before, "rm")
			if st := c.evaluate(monitorRoles()); st.State != before || len(st.Ignored) != 0 {
				t.Fatalf("after the release: %+v", st)
			}
		})
	}
	// The workflow signers may quarantine and, with no release role
	// named, release.
	c := newChain(t)
	c.next(lifecycle.Published, "alice")
	c.next(lifecycle.Quarantined, "alice")
	c.next(lifecycle.Published, "alice")
	if st := c.evaluate(open()); st.State != lifecycle.Published || len(st.Chain) != 3 {
		t.Fatalf("quarantined and released by the workflow signer: %+v", st)
	}
}

// A quarantine by a signer without the role, and a release by one without
// the release role (though allowed to publish), are ignored; a release to
// another state than the one before fails closed; a quarantine cannot
// follow a draft.
func TestQuarantineRoles(t *testing.T) {
	c := newChain(t)
	c.next(lifecycle.Published, "alice")
	q := c.event(c.head, lifecycle.Quarantined, "eve")
	c.add(q)
	st := c.evaluate(monitorRoles())
	if st.State != lifecycle.Published || ignoredFor(st, q.ID) == nil {
		t.Fatalf("quarantine by eve: %+v", st)
	}

	c = newChain(t)
	c.next(lifecycle.Published, "alice")
	c.next(lifecycle.Quarantined, "mon")
	rel := c.next(lifecycle.Published, "alice") // alice may publish, not release
	st = c.evaluate(monitorRoles())
	if st.State != lifecycle.Quarantined || ignoredFor(st, rel.ID) == nil {
		t.Fatalf("release by alice: %+v", st)
	}

	c = newChain(t)
	c.next(lifecycle.Published, "alice")
	c.next(lifecycle.Quarantined, "mon")
	c.next(lifecycle.Deprecated, "rm")
	var ce *lifecycle.ChainError
	if _, err := lifecycle.Evaluate(c.input(monitorRoles())); !errors.As(err, &ce) || ce.Problem != "transition" || !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("release to another state: %v", err)
	}

	c = newChain(t)
	c.next(lifecycle.Review, "alice")
	c.next(lifecycle.Quarantined, "mon")
	r := roles()
	r.Quarantine = []string{"mon"}
	if _, err := lifecycle.Evaluate(c.input(r)); !errors.As(err, &ce) || ce.Problem != "transition" {
		t.Fatalf("quarantine of a version under review: %v", err)
	}
}
