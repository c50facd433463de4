package immutability_test

import (
	"errors"
	"strings"
	"testing"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
)

func TestDefaultRules(t *testing.T) {
	rs := immutability.Default()
	sig := "sha256-" + strings.Repeat("ab", 32)
	cases := []struct {
		tag  string
		want immutability.Mode
	}{
		{"1.4.0", immutability.Immutable},
		{"v1.4.0", immutability.Immutable},
		{"1.4.0-rc.1+build.5", immutability.Immutable},
		{"0.0.0", immutability.Immutable},
		{"1.4", immutability.Mutable},
		{"01.4.0", immutability.Mutable},
		{"latest", immutability.Mutable},
		{"main", immutability.Mutable},
		{sig + ".sig", immutability.AppendOnly},
		{sig + ".att", immutability.AppendOnly},
		{sig + ".sbom", immutability.AppendOnly},
		{sig, immutability.AppendOnly},
		{sig + ".other", immutability.Mutable},
		{"V1.4.0", immutability.Immutable},                       // case-folding storage
		{strings.ToUpper(sig) + ".SIG", immutability.AppendOnly}, // likewise
	}
	for _, c := range cases {
		if got, _ := rs.Match("any/repo", c.tag); got != c.want {
			t.Errorf("%s: %s, want %s", c.tag, got, c.want)
		}
	}
}

func TestParsedRules(t *testing.T) {
	rs, err := immutability.Parse("rules.yaml", []byte(`version: ociwf.dev/immutability/v1
rules:
  - name: releases
    repositories: ["workflows/**"]
    tags: ["v*", "[0-9]*"]
    mode: immutable
  - name: nightly
    repositories: ["workflows/*"]
    tags: ["nightly-*"]
    mode: appendOnly
`))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		repo, tag string
		want      immutability.Mode
		rule      string
	}{
		{"workflows/build", "v2", immutability.Immutable, "releases"},
		{"workflows/team/build", "1", immutability.Immutable, "releases"},
		{"workflows/build", "nightly-3", immutability.AppendOnly, "nightly"},
		{"workflows/team/build", "nightly-3", immutability.Mutable, ""},
		{"scratch/build", "v2", immutability.Mutable, ""},
		{"scratch/build", "sha256-" + strings.Repeat("0", 64) + ".sig", immutability.AppendOnly, "cosign-accessories"},
	}
	for _, c := range cases {
		got, r := rs.Match(c.repo, c.tag)
		name := ""
		if r != nil {
			name = r.Name
		}
		if got != c.want || name != c.rule {
			t.Errorf("%s:%s: %s by %q, want %s by %q", c.repo, c.tag, got, name, c.want, c.rule)
		}
	}
}

func TestInvalidRules(t *testing.T) {
	for name, src := range map[string]string{
		"version":       "version: v0\nrules: []\n",
		"mode":          "version: ociwf.dev/immutability/v1\nrules: [{name: x, mode: frozen}]\n",
		"pattern":       "version: ociwf.dev/immutability/v1\nrules: [{name: x, mode: immutable, tags: ['[']}]\n",
		"unknown field": "version: ociwf.dev/immutability/v1\nrules: [{name: x, mode: immutable, tag: v1}]\n",
		"not yaml":      "{",
	} {
		if _, err := immutability.Parse("r.yaml", []byte(src)); !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(err.Error(), "r.yaml") {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestMutableAccessories(t *testing.T) {
	rs, err := immutability.Parse("r.yaml", []byte("version: ociwf.dev/immutability/v1\naccessories: mutable\nrules: []\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := rs.Match("a", "sha256-"+strings.Repeat("1", 64)+".att"); got != immutability.Mutable {
		t.Fatalf("accessory tag is %s, want mutable", got)
	}
	if _, err := immutability.Parse("r.yaml", []byte("version: ociwf.dev/immutability/v1\naccessories: immutable\n")); !errors.Is(err, errdef.ErrInvalid) {
		t.Fatalf("accessories: immutable: %v", err)
	}
}

// Parse never panics, and the rules it accepts match without panicking.
func FuzzParse(f *testing.F) {
	f.Add([]byte("version: ociwf.dev/immutability/v1\nrules: [{name: r, repositories: ['a/**'], tags: ['v*'], mode: immutable}]\n"))
	f.Add([]byte("version: ociwf.dev/immutability/v1\naccessories: mutable\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := immutability.Parse("f.yaml", b)
		if err != nil {
			if !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("error %v does not match ErrInvalid", err)
			}
			return
		}
		rs.Match("a/b", "v1.0.0")
		rs.Match("a/b", "sha256-"+strings.Repeat("0", 64)+".sig")
	})
}
