package trust_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/trust"
)

const sample = "../../testdata/policies/release.yaml"

func load(t *testing.T) *trust.Policy {
	t.Helper()
	p, err := trust.Load(sample)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSchemaCompiles(t *testing.T) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(trust.Schema))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("s.json", doc); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compile("s.json"); err != nil {
		t.Fatal(err)
	}
}

func TestLoadResolvesKeysAndDefaults(t *testing.T) {
	p := load(t)
	rel := p.TrustPolicies[0]
	abs, _ := filepath.Abs(filepath.Join(filepath.Dir(sample), "keys", "release-2025.pub"))
	if got, _ := filepath.Abs(rel.Signers[0].Key); got != abs {
		t.Fatalf("key path %s, want %s", got, abs)
	}
	if rel.Signers[2].Key != "awskms:///alias/workflow-security" {
		t.Fatalf("KMS URI changed: %s", rel.Signers[2].Key)
	}
	if rel.SignedIdentity.Type != trust.Exact || p.TrustPolicies[1].Threshold != 1 {
		t.Fatalf("defaults: %+v, threshold %d", rel.SignedIdentity, p.TrustPolicies[1].Threshold)
	}
	if got := rel.Lifecycle.For("deprecated"); got != trust.Deny {
		t.Fatalf("deprecated: %s", got)
	}
	if got := p.TrustPolicies[1].Lifecycle.For("deprecated"); got != trust.Warn {
		t.Fatalf("default deprecated: %s", got)
	}
	if got := p.TrustPolicies[1].Lifecycle.For("retired"); got != trust.Deny {
		t.Fatalf("default retired: %s", got)
	}
}

func TestScopeSelection(t *testing.T) {
	p := load(t)
	cases := map[string]string{
		"registry.example.com/workflows/release":        "release", // exact
		"registry.example.com/workflows/release-train":  "release", // pattern
		"registry.example.com/teams/data/nightly":       "teams",   // ** across segments
		"mirror.internal:5000/workflows/release":        "mirror",
		"registry.example.com/workflows/release/nested": "scratch", // * stays in its segment
		"elsewhere.example.com/anything":                "scratch",
	}
	for repo, want := range cases {
		s, err := p.For(repo)
		if err != nil || s.Name != want {
			t.Errorf("%s: got %v %v, want %s", repo, s, err, want)
		}
	}
	noFallback := &trust.Policy{TrustPolicies: p.TrustPolicies[:1]}
	if _, err := noFallback.For("elsewhere.example.com/x"); !errors.Is(err, trust.ErrNoScope) {
		t.Fatalf("uncovered repository: %v", err)
	}
}

func TestSignerWindows(t *testing.T) {
	s := load(t).TrustPolicies[0].Signers
	at := func(v string) time.Time { tm, _ := time.Parse(time.RFC3339, v); return tm }
	cases := []struct {
		signer int
		at     string
		want   bool
	}{
		{0, "2024-12-31T23:59:59Z", false},
		{0, "2025-06-01T00:00:00Z", true},
		{0, "2026-01-31T00:00:00Z", true}, // inclusive
		{0, "2026-02-01T00:00:00Z", false},
		{1, "2025-12-31T00:00:00Z", false},
		{1, "2030-01-01T00:00:00Z", true},
		{2, "1999-01-01T00:00:00Z", true}, // no window
	}
	for _, c := range cases {
		if got := s[c.signer].ValidAt(at(c.at)); got != c.want {
			t.Errorf("%s at %s: %v, want %v", s[c.signer].Name, c.at, got, c.want)
		}
	}
}

func TestSignedIdentity(t *testing.T) {
	p := load(t)
	scope := func(repo string) *trust.Scope {
		s, err := p.For(repo)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	cases := []struct {
		repo, signed string
		want         bool
	}{
		{"registry.example.com/workflows/release", "registry.example.com/workflows/release", true},
		{"registry.example.com/workflows/release", "registry.example.com/workflows/release-train", false},  // replay from another repository
		{"registry.example.com/workflows/release", "registry.example.com/workflows/release:1.0.0", false},  // exact
		{"registry.example.com/teams/data/nightly", "registry.example.com/teams/data/nightly:2.0.0", true}, // matchRepository
		{"registry.example.com/teams/data/nightly", "registry.example.com/teams/data/nightly-2", false},
		{"mirror.internal:5000/workflows/release", "registry.example.com/workflows/release", true}, // remap
		{"mirror.internal:5000/workflows/release", "mirror.internal:5000/workflows/release", false},
	}
	for _, c := range cases {
		if got := scope(c.repo).AcceptsIdentity(c.repo, c.signed); got != c.want {
			t.Errorf("%s signed as %s: %v, want %v", c.repo, c.signed, got, c.want)
		}
	}
}

// Remapping respects path-segment boundaries.
func TestRemapBoundary(t *testing.T) {
	s := &trust.Scope{SignedIdentity: trust.SignedIdentity{Type: trust.Remap, Prefix: "mirror.internal/team", SignedPrefix: "registry.example.com/team"}}
	cases := []struct {
		repo, signed string
		want         bool
	}{
		{"mirror.internal/team/wf", "registry.example.com/team/wf", true},
		{"mirror.internal/team", "registry.example.com/team", true},
		{"mirror.internal/team-evil/wf", "registry.example.com/team-evil/wf", false},
		{"mirror.internal/team-evil/wf", "mirror.internal/team-evil/wf", true}, // outside the prefix: exact
	}
	for _, c := range cases {
		if got := s.AcceptsIdentity(c.repo, c.signed); got != c.want {
			t.Errorf("%s signed as %s: %v, want %v", c.repo, c.signed, got, c.want)
		}
	}
}

func TestRequirements(t *testing.T) {
	r := load(t).TrustPolicies[0].Require
	if !r.BuilderAllowed("https://github.com/acme/workflows/.github/workflows/release.yml@refs/heads/main") || r.BuilderAllowed("https://github.com/evil/workflows/.github/workflows/release.yml@refs/heads/main") {
		t.Fatal("builders")
	}
	if !r.SourceAllowed("git+https://github.com/acme/workflows") || r.SourceAllowed("git+https://github.com/acmeco/workflows") {
		t.Fatal("sources")
	}
	if !(trust.Requirements{}).BuilderAllowed("anything") {
		t.Fatal("empty list allows any builder")
	}
}

func TestKeyPolicy(t *testing.T) {
	p := trust.KeyPolicy("cosign.pub", "127.0.0.1:5001/wf/build", trust.KeyPolicyOptions{})
	s, err := p.For("127.0.0.1:5001/wf/build")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(s.Require.Attestations, ",") != "slsaprovenance1,cyclonedx" || s.Threshold != 1 || !s.AcceptsIdentity("127.0.0.1:5001/wf/build", "127.0.0.1:5001/wf/build") {
		t.Fatalf("secure by default: %+v", s)
	}
	if _, err := p.For("127.0.0.1:5001/wf/other"); !errors.Is(err, trust.ErrNoScope) {
		t.Fatal("a key policy covers its repository only")
	}
	m := trust.KeyPolicy("cosign.pub", "mirror:5000/wf/build", trust.KeyPolicyOptions{SignatureOnly: true, SignedIdentity: "registry.example.com/wf/build"})
	ms, _ := m.For("mirror:5000/wf/build")
	if len(ms.Require.Attestations) != 0 || !ms.AcceptsIdentity("mirror:5000/wf/build", "registry.example.com/wf/build") || ms.AcceptsIdentity("mirror:5000/wf/build", "mirror:5000/wf/build") {
		t.Fatalf("signature-only mirror policy: %+v", ms)
	}
}

func TestInvalidPolicies(t *testing.T) {
	base := func(body string) string {
		return "version: ociwf.dev/trust/v1\ntrustPolicies:\n" + body
	}
	signer := "    signers: [{name: a, key: a.pub}]\n"
	keyless := func(fields string) string {
		return base("  - name: a\n    registryScopes: ['*']\n    signers: [{name: a, " + fields + "}]\n")
	}
	cases := []struct{ name, src, want string }{
		{"not yaml", "version: [", "did not find expected node content"},
		{"wrong version", "version: v9\ntrustPolicies: [{name: a, registryScopes: ['*'], skip: true}]\n", "/version"},
		{"unknown field", base("  - name: a\n    registryScopes: ['*']\n    skip: true\n    colour: red\n"), "additional properties 'colour' not allowed"},
		{"duplicate key", base("  - name: a\n    name: b\n    registryScopes: ['*']\n"), "already defined"},
		{"no scopes", base("  - name: a\n" + signer), "missing property 'registryScopes'"},
		{"bad time", base("  - name: a\n    registryScopes: ['*']\n    signers: [{name: a, key: a.pub, notAfter: tomorrow}]\n"), "/trustPolicies/0/signers/0/notAfter"},
		{"window backwards", base("  - name: a\n    registryScopes: ['*']\n    signers: [{name: a, key: a.pub, notBefore: 2026-02-01T00:00:00Z, notAfter: 2026-01-01T00:00:00Z}]\n"), "is not before notAfter"},
		{"no signers", base("  - name: a\n    registryScopes: ['*']\n"), "no signers"},
		{"threshold too high", base("  - name: a\n    registryScopes: ['*']\n" + signer + "    threshold: 2\n"), "threshold 2 exceeds the 1 signers"},
		{"duplicate scope", base("  - name: a\n    registryScopes: ['r.io/x']\n" + signer + "  - name: b\n    registryScopes: ['r.io/x']\n" + signer), `scope "r.io/x" is already in policy "a"`},
		{"duplicate name", base("  - name: a\n    registryScopes: ['r.io/x']\n" + signer + "  - name: a\n    registryScopes: ['r.io/y']\n" + signer), `duplicate policy name "a"`},
		{"scope without repository", base("  - name: a\n    registryScopes: ['r.io']\n" + signer), "want registry/repository"},
		{"remap without prefixes", base("  - name: a\n    registryScopes: ['*']\n    signedIdentity: {type: remap}\n" + signer), "/trustPolicies/0/signedIdentity"},
		{"prefix without remap", base("  - name: a\n    registryScopes: ['*']\n    signedIdentity: {type: exact, prefix: x}\n" + signer), "/trustPolicies/0/signedIdentity"},
		{"unknown attestation", base("  - name: a\n    registryScopes: ['*']\n" + signer + "    require: {attestations: [slsaprovenence1]}\n"), `predicate type "slsaprovenence1"`},
		{"bad lifecycle action", base("  - name: a\n    registryScopes: ['*']\n" + signer + "    lifecycle: {retired: ignore}\n"), "/trustPolicies/0/lifecycle/retired"},
		{"skip with signers", base("  - name: a\n    registryScopes: ['*']\n    skip: true\n" + signer), "skips verification takes no signers"},
		{"key and keyless", keyless("key: a.pub, keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i}"), "/trustPolicies/0/signers/0"},
		{"neither key nor keyless", keyless("notAfter: 2026-01-01T00:00:00Z"), "/trustPolicies/0/signers/0"},
		{"keyless without trusted root", keyless("keyless: {identity: a@b.c, issuer: https://i}"), "missing property 'trustedRoot'"},
		{"keyless without identity", keyless("keyless: {trustedRoot: r.json, issuer: https://i}"), "/trustPolicies/0/signers/0/keyless"},
		{"identity and identityRegexp", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, identityRegexp: '.*', issuer: https://i}"), "/trustPolicies/0/signers/0/keyless"},
		{"keyless without issuer", keyless("keyless: {trustedRoot: r.json, identity: a@b.c}"), "/trustPolicies/0/signers/0/keyless"},
		{"bad identity regexp", keyless("keyless: {trustedRoot: r.json, identityRegexp: 'a(', issuer: https://i}"), "/trustPolicies/0/signers/0/keyless/identityRegexp: bad regular expression"},
		{"bad issuer regexp", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuerRegexp: '[z-a]'}"), "/trustPolicies/0/signers/0/keyless/issuerRegexp: bad regular expression"},
		{"issuer as a claim", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, claims: {issuer: https://i}}"), "/trustPolicies/0/signers/0/keyless/claims"},
		{"unknown claim", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, claims: {githubWorkflowBranch: main}}"), "additional properties 'githubWorkflowBranch' not allowed"},
		{"empty claim", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, claims: {sourceRepositoryURI: ''}}"), "/trustPolicies/0/signers/0/keyless/claims/sourceRepositoryURI"},
		{"no trusted time", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, tlog: {required: false}}"), "no trusted time for a short-lived certificate"},
		{"threshold without tlog", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, tlog: {required: false, threshold: 2}, timestamps: {signed: 1}}"), "/trustPolicies/0/signers/0/keyless/tlog/threshold"},
		{"tlog threshold zero", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, tlog: {threshold: 0}}"), "/trustPolicies/0/signers/0/keyless/tlog/threshold"},
		{"negative signed timestamps", keyless("keyless: {trustedRoot: r.json, identity: a@b.c, issuer: https://i, timestamps: {signed: -1}}"), "/trustPolicies/0/signers/0/keyless/timestamps/signed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := trust.Parse("p.yaml", []byte(c.src))
			if err == nil {
				t.Fatal("accepted")
			}
			if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "p.yaml: ") {
				t.Fatalf("got %q, want ErrInvalid naming p.yaml and %q", err, c.want)
			}
		})
	}
}

func TestOversizedPolicy(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big.yaml")
	if err := os.WriteFile(big, bytes.Repeat([]byte("# padding\n"), trust.MaxPolicyBytes/10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := trust.Load(big); !errors.Is(err, errdef.ErrTooLarge) {
		t.Fatalf("got %v, want ErrTooLarge", err)
	}
}

// Relative key files become absolute, against the policy file's directory,
// however the policy file was named: a later chdir does not change which
// key is trusted.
func TestLoadMakesKeyPathsAbsolute(t *testing.T) {
	dir, err := filepath.EvalSymlinks(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "etc")
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	src := "version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: a\n    registryScopes: ['*']\n    signers: [{name: k, key: keys/k.pub}]\n"
	if err := os.WriteFile(filepath.Join(sub, "policy.yaml"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	want := filepath.Join(sub, "keys", "k.pub")
	t.Chdir(dir)
	for _, path := range []string{"etc/policy.yaml", "./etc/policy.yaml", filepath.Join(sub, "policy.yaml"), "etc/../etc/policy.yaml"} {
		t.Run(path, func(t *testing.T) {
			p, err := trust.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.TrustPolicies[0].Signers[0].Key; got != want {
				t.Fatalf("key %s, want %s", got, want)
			}
		})
	}
}

// KeyPolicy takes further required predicate types and a scope name; its
// own wording names no command-line flag.
func TestKeyPolicyOptions(t *testing.T) {
	repo := "127.0.0.1:5001/wf/build"
	cases := []struct {
		name      string
		opts      trust.KeyPolicyOptions
		wantName  string
		wantTypes string
	}{
		{"defaults", trust.KeyPolicyOptions{}, "key", "slsaprovenance1,cyclonedx"},
		{"named, with a further type", trust.KeyPolicyOptions{Name: "--key", Attestations: []string{"https://example.com/review/v1"}}, "--key", "slsaprovenance1,cyclonedx,https://example.com/review/v1"},
		{"signature only, with a type", trust.KeyPolicyOptions{SignatureOnly: true, Attestations: []string{"spdxjson"}}, "key", "spdxjson"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := trust.KeyPolicy("cosign.pub", repo, c.opts)
			if err := p.Validate(); err != nil {
				t.Fatal(err)
			}
			s, err := p.For(repo)
			if err != nil {
				t.Fatal(err)
			}
			if s.Name != c.wantName || strings.Join(s.Require.Attestations, ",") != c.wantTypes {
				t.Fatalf("scope %q requiring %v", s.Name, s.Require.Attestations)
			}
		})
	}
	// A type that is none fails validation as invalid input.
	err := trust.KeyPolicy("cosign.pub", repo, trust.KeyPolicyOptions{Attestations: []string{"not a type"}}).Validate()
	if !errors.Is(err, errdef.ErrInvalid) || strings.Contains(err.Error(), "--") {
		t.Fatalf("bad type: %v", err)
	}
}

// digestOnly accepts any signed repository, and loads from a policy file.
func TestDigestOnlyIdentity(t *testing.T) {
	s := &trust.Scope{SignedIdentity: trust.SignedIdentity{Type: trust.DigestOnly}}
	for _, signed := range []string{"registry.example.com/workflows/release", "elsewhere.example/other", ""} {
		if !s.AcceptsIdentity("registry.example.com/workflows/release", signed) {
			t.Errorf("digestOnly refused %q", signed)
		}
	}
	p, err := trust.Parse("policy.yaml", []byte("version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: a\n    registryScopes: ['*']\n    signedIdentity: {type: digestOnly}\n    signers: [{name: k, key: /k.pub}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := p.TrustPolicies[0].SignedIdentity.Type; got != trust.DigestOnly {
		t.Fatalf("type %q", got)
	}
}

const keylessSample = "../../testdata/policies/keyless.yaml"

// Keyless signers load with their trusted roots made absolute against the
// policy file, and the transparency log required unless the policy says
// otherwise.
func TestLoadKeyless(t *testing.T) {
	p, err := trust.Load(keylessSample)
	if err != nil {
		t.Fatal(err)
	}
	sg := p.TrustPolicies[0].Signers
	wantRoot, _ := filepath.Abs(filepath.Join(filepath.Dir(keylessSample), "sigstore", "trusted_root.json"))
	ci, sec := sg[0].Keyless, sg[1].Keyless
	if ci == nil || sec == nil || sg[2].Keyless != nil || sg[0].Key != "" {
		t.Fatalf("signers: %+v", sg)
	}
	if ci.TrustedRoot != wantRoot || sec.TrustedRoot != wantRoot {
		t.Fatalf("trusted roots %s, %s, want %s", ci.TrustedRoot, sec.TrustedRoot, wantRoot)
	}
	if ci.Identity != "https://github.com/acme/workflows/.github/workflows/release.yml@refs/heads/main" || ci.Issuer != "https://token.actions.githubusercontent.com" ||
		ci.Claims.SourceRepositoryURI != "https://github.com/acme/workflows" || ci.Claims.GithubWorkflowTrigger != "push" {
		t.Fatalf("release-ci: %+v", ci)
	}
	if ci.TLogThreshold() != 1 || ci.TLog.Required == nil || !*ci.TLog.Required || ci.Timestamps.Signed != 0 {
		t.Fatalf("release-ci defaults: tlog %d %+v, timestamps %+v", ci.TLogThreshold(), ci.TLog, ci.Timestamps)
	}
	if sec.TLogThreshold() != 0 || sec.Timestamps.Signed != 1 || sec.IdentityRegexp == "" || sec.IssuerRegexp == "" {
		t.Fatalf("security: %+v", sec)
	}
	if !sg[1].ValidAt(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)) || sg[1].ValidAt(time.Date(2028, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Fatal("keyless signers keep their validity window")
	}
}

// A trusted root that is missing or not a trusted_root.json fails Load,
// naming the policy file and the signer's trustedRoot.
func TestLoadKeylessBadTrustedRoot(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "garbage.json"), []byte(`{"mediaType": 7}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, root := range []string{"missing.json", "garbage.json"} {
		t.Run(root, func(t *testing.T) {
			src := "version: ociwf.dev/trust/v1\ntrustPolicies:\n  - name: a\n    registryScopes: ['*']\n    signers:\n      - {name: k, key: k.pub}\n      - {name: ci, keyless: {trustedRoot: " + root + ", identity: a@b.c, issuer: https://i}}\n"
			path := filepath.Join(dir, "policy.yaml")
			if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := trust.Load(path)
			if !errors.Is(err, errdef.ErrInvalid) || !strings.HasPrefix(err.Error(), path+": /trustPolicies/0/signers/1/keyless/trustedRoot: ") {
				t.Fatalf("got %v, want ErrInvalid naming the file and the trustedRoot pointer", err)
			}
		})
	}
}

// Policies built in code get the same keyless checks and defaults.
func TestValidateKeyless(t *testing.T) {
	no := false
	mk := func(k trust.Keyless) *trust.Policy {
		return &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{Name: "a", RegistryScopes: []string{"*"}, Signers: []trust.Signer{{Name: "ci", Keyless: &k}}}}}
	}
	ok := mk(trust.Keyless{TrustedRoot: "/r.json", Identity: "a@b.c", Issuer: "https://i"})
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	if got := ok.TrustPolicies[0].Signers[0].Keyless.TLogThreshold(); got != 1 {
		t.Fatalf("default tlog threshold %d", got)
	}
	bad := mk(trust.Keyless{TrustedRoot: "/r.json", Identity: "a@b.c", Issuer: "https://i", TLog: trust.TLogRequirement{Required: &no}})
	if err := bad.Validate(); !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "no trusted time") {
		t.Fatalf("no time source: %v", err)
	}
}
