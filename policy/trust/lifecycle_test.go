package trust_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/trust"
)

// governed is a scope with lifecycle signers and roles; lifecycle is
// appended under the scope's lifecycle key.
func governed(lifecycle string) string {
	return `version: ociwf.dev/trust/v1
trustPolicies:
  - name: release
    registryScopes: [r.example/wf/**]
    signers:
      - {name: alice, key: keys/alice.pub}
    lifecycle:
      signers:
        - {name: bob, key: keys/bob.pub}
        - {name: carol, key: /abs/carol.pub}
        - {name: kms, key: "awskms:///alias/release"}
` + lifecycle
}

func TestLifecycleSectionParses(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "conf", "policy.yaml")
	src := governed(`      deprecated: deny
      submit: [alice]
      approve: {signers: [bob, carol]}
      publish: [kms]
      retire: [kms, alice]
      emergency: {signers: [bob, carol, kms], threshold: 2}
      quarantine: [kms]
      release: [bob]
`)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Chdir(dir)
	p, err := trust.Load("conf/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s := p.TrustPolicies[0]
	l := s.Lifecycle
	keys := map[string]string{}
	for _, sg := range s.LifecycleSigners() {
		keys[sg.Name] = sg.Key
	}
	want := map[string]string{
		"alice": filepath.Join(dir, "conf", "keys", "alice.pub"),
		"bob":   filepath.Join(dir, "conf", "keys", "bob.pub"),
		"carol": "/abs/carol.pub",
		"kms":   "awskms:///alias/release",
	}
	for n, k := range want {
		if keys[n] != k {
			t.Errorf("signer %s: key %q, want %q", n, keys[n], k)
		}
	}
	if got := s.SignerNames(); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("workflow signers %v: lifecycle signers are not workflow signers", got)
	}
	if l.Approve.Threshold != 1 || l.Emergency.Threshold != 2 {
		t.Fatalf("thresholds: approve %d, emergency %d", l.Approve.Threshold, l.Emergency.Threshold)
	}
	if got := l.Allowed(lifecycle.RolePublish, s.SignerNames()); !slices.Equal(got, []string{"kms"}) {
		t.Fatalf("publishers %v", got)
	}
	if got := l.Allowed(lifecycle.RoleDeprecate, s.SignerNames()); !slices.Equal(got, []string{"alice"}) {
		t.Fatalf("deprecators %v: a role listing nobody falls to the workflow signers", got)
	}
	if got := l.Allowed(lifecycle.RoleApprove, s.SignerNames()); !slices.Equal(got, []string{"bob", "carol"}) {
		t.Fatalf("approvers %v", got)
	}
	if l.For(lifecycle.Deprecated) != trust.Deny || l.For(lifecycle.Retired) != trust.Deny || l.For(lifecycle.Published) != trust.Allow {
		t.Fatal("actions")
	}
	// The workflow signers may always quarantine; release falls to them
	// only when the role lists nobody.
	if got := l.Allowed(lifecycle.RoleQuarantine, s.SignerNames()); !slices.Equal(got, []string{"alice", "kms"}) {
		t.Fatalf("quarantiners %v", got)
	}
	if got := l.Allowed(lifecycle.RoleRelease, s.SignerNames()); !slices.Equal(got, []string{"bob"}) {
		t.Fatalf("releasers %v", got)
	}
	// A quarantined version is refused even where retired ones are allowed.
	if allow := (trust.LifecycleRules{Retired: trust.Allow, Deprecated: trust.Allow}); allow.For(lifecycle.Quarantined) != trust.Deny {
		t.Fatal("quarantined allowed")
	}
	for _, s := range []lifecycle.State{lifecycle.Draft, lifecycle.Review, lifecycle.Approved} {
		if l.For(s) != trust.Deny {
			t.Fatalf("%s: %s", s, l.For(s))
		}
	}
	// The parsed policy validates again as it is (Validate after Parse
	// keeps the defaults).
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}

	// Without roles, nothing is required and no emergency path exists.
	p, err = trust.Parse("p.yaml", []byte(governed("")))
	if err != nil {
		t.Fatal(err)
	}
	if r := p.TrustPolicies[0].Lifecycle.Roles; r.Approve.Threshold != 0 || r.Emergency.Threshold != 0 || len(r.Allowed(lifecycle.RoleApprove, []string{"alice"})) != 0 {
		t.Fatalf("roles %+v", r)
	}
}

func TestInvalidLifecycleSections(t *testing.T) {
	for _, tc := range []struct{ name, lifecycle, want string }{
		{"unknown role name in a list", "      publish: [kms, mallory]\n", `/trustPolicies/0/lifecycle/publish/1: no signer named "mallory"`},
		{"unknown submitter", "      submit: [nobody]\n", `/trustPolicies/0/lifecycle/submit/0: no signer named "nobody"`},
		{"unknown approver", "      approve: {signers: [bob, eve]}\n", `/trustPolicies/0/lifecycle/approve/signers/1: no signer named "eve"`},
		{"unknown emergency approver", "      emergency: {signers: [eve]}\n", `/trustPolicies/0/lifecycle/emergency/signers/0`},
		{"approve threshold above its signers", "      approve: {signers: [bob, carol], threshold: 3}\n", "/trustPolicies/0/lifecycle/approve/threshold: threshold 3 exceeds the 2 signers"},
		{"emergency threshold above its signers", "      emergency: {signers: [bob], threshold: 2}\n", "/trustPolicies/0/lifecycle/emergency/threshold: threshold 2 exceeds the 1 signers"},
		{"threshold zero", "      approve: {signers: [bob], threshold: 0}\n", "/trustPolicies/0/lifecycle/approve/threshold"},
		{"negative threshold", "      emergency: {signers: [bob], threshold: -1}\n", "/trustPolicies/0/lifecycle/emergency/threshold"},
		{"threshold without signers", "      approve: {threshold: 1}\n", "/trustPolicies/0/lifecycle/approve: missing property 'signers'"},
		{"empty approver set", "      approve: {signers: []}\n", "/trustPolicies/0/lifecycle/approve/signers"},
		{"duplicate in a role", "      retire: [kms, kms]\n", "/trustPolicies/0/lifecycle/retire"},
		{"duplicate approver", "      approve: {signers: [bob, bob], threshold: 2}\n", "/trustPolicies/0/lifecycle/approve/signers"},
		{"unknown role", "      veto: [bob]\n", "additional properties 'veto' not allowed"},
		{"unknown quorum field", "      approve: {signers: [bob], quorum: 1}\n", "/trustPolicies/0/lifecycle/approve"},
		{"role as a string", "      publish: kms\n", "/trustPolicies/0/lifecycle/publish"},
		{"lifecycle signer without a key", "        - {name: dave}\n", "/trustPolicies/0/lifecycle/signers/3"},
		{"lifecycle signer with a bad window", "        - {name: dave, key: d.pub, notBefore: 2026-02-01T00:00:00Z, notAfter: 2026-01-01T00:00:00Z}\n", "/trustPolicies/0/lifecycle/signers/3: notBefore"},
		{"lifecycle signer named as a workflow signer", "        - {name: alice, key: other.pub}\n", `/trustPolicies/0/lifecycle/signers/3/name: duplicate signer "alice"`},
		{"lifecycle signers named twice", "        - {name: bob, key: other.pub}\n", `/trustPolicies/0/lifecycle/signers/3/name: duplicate signer "bob"`},
		{"one key under two names", "        - {name: bob2, key: keys/bob.pub}\n", `/trustPolicies/0/lifecycle/signers/3/key: signers "bob" and "bob2" have the same key`},
		{"one key under two spellings", "        - {name: alice2, key: ./keys/../keys/alice.pub}\n", `/trustPolicies/0/lifecycle/signers/3/key: signers "alice" and "alice2" have the same key`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := trust.Parse("p.yaml", []byte(governed(tc.lifecycle)))
			if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error naming %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}

// Policies built in code are held to the rules files are, including those
// the schema states for files.
func TestValidateLifecycleRoles(t *testing.T) {
	base := func(edit func(s *trust.Scope)) *trust.Policy {
		p := &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{
			Name: "release", RegistryScopes: []string{"r.example/wf"},
			Signers:   []trust.Signer{{Name: "alice", Key: "a.pub"}},
			Lifecycle: trust.LifecycleRules{Signers: []trust.Signer{{Name: "bob", Key: "b.pub"}, {Name: "carol", Key: "c.pub"}}},
		}}}
		edit(&p.TrustPolicies[0])
		return p
	}
	ok := base(func(s *trust.Scope) { s.Lifecycle.Approve = lifecycle.Quorum{Signers: []string{"bob", "carol"}} })
	if err := ok.Validate(); err != nil || ok.TrustPolicies[0].Lifecycle.Approve.Threshold != 1 {
		t.Fatalf("valid: %v, threshold %d", err, ok.TrustPolicies[0].Lifecycle.Approve.Threshold)
	}
	for name, edit := range map[string]func(s *trust.Scope){
		"threshold without signers": func(s *trust.Scope) { s.Lifecycle.Emergency.Threshold = 1 },
		"threshold above signers":   func(s *trust.Scope) { s.Lifecycle.Approve = lifecycle.Quorum{Signers: []string{"bob"}, Threshold: 2} },
		"negative threshold":        func(s *trust.Scope) { s.Lifecycle.Approve = lifecycle.Quorum{Signers: []string{"bob"}, Threshold: -1} },
		"unknown name":              func(s *trust.Scope) { s.Lifecycle.Retire = []string{"eve"} },
		"unknown quarantiner":       func(s *trust.Scope) { s.Lifecycle.Quarantine = []string{"eve"} },
		"unknown releaser":          func(s *trust.Scope) { s.Lifecycle.Release = []string{"eve"} },
		"duplicate approver": func(s *trust.Scope) {
			s.Lifecycle.Approve = lifecycle.Quorum{Signers: []string{"bob", "bob"}, Threshold: 2}
		},
		"duplicate emergency signer": func(s *trust.Scope) {
			s.Lifecycle.Emergency = lifecycle.Quorum{Signers: []string{"bob", "carol", "bob"}}
		},
		"duplicate publisher":        func(s *trust.Scope) { s.Lifecycle.Publish = []string{"carol", "carol"} },
		"one key under two names":    func(s *trust.Scope) { s.Lifecycle.Signers[1].Key = "b.pub" },
		"duplicate lifecycle signer": func(s *trust.Scope) { s.Lifecycle.Signers[1].Name = "alice" },
	} {
		t.Run(name, func(t *testing.T) {
			if err := base(edit).Validate(); !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "/trustPolicies/0/") {
				t.Fatalf("got %v, want an invalid-policy error with a path", err)
			}
		})
	}
}
