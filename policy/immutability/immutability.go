// Package immutability decides which tags of which repositories a
// registry must protect, with Harbor's tag immutability semantics: rules
// select repositories and tags by pattern, any matching rule applies (OR),
// and a protected tag is either immutable (created once, never moved or
// deleted) or append-only (its manifest may be replaced only by one that
// keeps every layer of the previous, as cosign adds signatures).
//
// Without configured rules, every semantic-version tag (v?MAJOR.MINOR.PATCH
// with optional -pre-release and +build) in every repository is immutable.
// Cosign's signature, attestation and SBOM tags (sha256-<hex>.sig, .att,
// .sbom) and the OCI referrers fallback tags (sha256-<hex>) are always
// append-only, and a registry stores only such accessories under them
// (IsAccessoryTag names them).
package immutability

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/internal/pattern"
)

// Version is the rules file format version.
const Version = "ociwf.dev/immutability/v1"

// Mode is how a tag is protected.
type Mode string

// Modes, from least to most protected.
const (
	// Mutable tags may be moved and deleted.
	Mutable Mode = "mutable"
	// AppendOnly tags may be moved only to a manifest that keeps every
	// layer (for an index, every manifest) of the one they name, and never
	// deleted.
	AppendOnly Mode = "appendOnly"
	// Immutable tags name one manifest forever once created.
	Immutable Mode = "immutable"
)

// Rule protects the tags matching Tags in repositories matching
// Repositories. Patterns are doublestar globs: * within one path segment,
// ** across segments; an empty list matches everything.
type Rule struct {
	Name         string   `yaml:"name" json:"name"`
	Repositories []string `yaml:"repositories" json:"repositories,omitempty"`
	Tags         []string `yaml:"tags" json:"tags,omitempty"`
	Mode         Mode     `yaml:"mode" json:"mode"`

	tagRegexp *regexp.Regexp // built-in rules match tags by expression
}

// Rules is a parsed rule set.
type Rules struct {
	Version string `yaml:"version" json:"version"`
	Rules   []Rule `yaml:"rules" json:"rules"`
	// Accessories is how cosign's accessory and referrers fallback tags
	// are protected: empty means AppendOnly; Mutable lets cosign's
	// --replace rewrite them, as registries without rules do.
	Accessories Mode `yaml:"accessories,omitempty" json:"accessories,omitempty"`
}

// semver matches v?MAJOR.MINOR.PATCH[-pre][+build] (semver.org's grammar,
// with an optional leading v). Like accessory, it is compiled once and
// never written: a constant in effect.
var semver = regexp.MustCompile(`^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)` +
	`(-(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(\.(0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?` +
	`(\+[0-9a-zA-Z-]+(\.[0-9a-zA-Z-]+)*)?$`)

// accessory matches cosign's accessory tags and the referrers fallback tag.
var accessory = regexp.MustCompile(`^sha(256|512)-[0-9a-f]{64,128}(\.(sig|att|sbom))?$`)

// AccessoryRule is always in force: cosign signature, attestation and SBOM
// tags and referrers fallback tags are append-only.
func AccessoryRule() Rule {
	return Rule{Name: "cosign-accessories", Mode: AppendOnly, tagRegexp: accessory}
}

// SemverRule is the default rule: semantic-version tags are immutable.
func SemverRule() Rule {
	return Rule{Name: "semver", Mode: Immutable, tagRegexp: semver}
}

// Default returns the rules in force without configuration.
func Default() *Rules {
	return &Rules{Version: Version, Rules: []Rule{SemverRule()}}
}

// IsAccessoryTag reports whether tag is a name cosign and the OCI
// referrers fallback reserve for a digest's accessories: sha256-<hex>
// (the referrers fallback index) and sha256-<hex>.sig, .att and .sbom
// (sha512 likewise), in any case.
func IsAccessoryTag(tag string) bool { return accessory.MatchString(strings.ToLower(tag)) }

// IsSemver reports whether tag is a semantic version (with optional v).
func IsSemver(tag string) bool { return semver.MatchString(tag) }

// MaxRulesBytes bounds a rules file.
const MaxRulesBytes = 1 << 20

// Load reads a rules file.
func Load(path string) (*Rules, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("immutability rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxRulesBytes+1))
	if err != nil {
		return nil, fmt.Errorf("immutability rules %s: %w", path, err)
	}
	if len(b) > MaxRulesBytes {
		return nil, fmt.Errorf("immutability rules %s: over %d bytes: %w", path, MaxRulesBytes, errdef.ErrTooLarge)
	}
	return Parse(path, b)
}

// Parse reads rules from YAML. Unknown fields, unknown modes and invalid
// patterns are errors matching errdef.ErrInvalid.
func Parse(file string, src []byte) (*Rules, error) {
	var rs Rules
	dec := yaml.NewDecoder(bytes.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&rs); err != nil {
		return nil, fmt.Errorf("%s: %v: %w", file, err, errdef.ErrInvalid)
	}
	if rs.Version != Version {
		return nil, fmt.Errorf("%s: version %q, want %q: %w", file, rs.Version, Version, errdef.ErrInvalid)
	}
	if a := rs.Accessories; a != "" && a != Mutable && a != AppendOnly {
		return nil, fmt.Errorf("%s: accessories %q, want %s or %s: %w", file, a, AppendOnly, Mutable, errdef.ErrInvalid)
	}
	for i, r := range rs.Rules {
		if r.Mode != Immutable && r.Mode != AppendOnly {
			return nil, fmt.Errorf("%s: rules[%d] (%s): mode %q, want %s or %s: %w", file, i, r.Name, r.Mode, Immutable, AppendOnly, errdef.ErrInvalid)
		}
		for _, p := range append(append([]string{}, r.Repositories...), r.Tags...) {
			if !pattern.Valid(p) {
				return nil, fmt.Errorf("%s: rules[%d] (%s): invalid pattern %q: %w", file, i, r.Name, p, errdef.ErrInvalid)
			}
		}
	}
	return &rs, nil
}

// matches reports whether the rule covers tag in repo. Tags are compared
// as written and in lower case, so that on storage that folds case
// (a case-insensitive file system) V1.0.0 cannot overwrite v1.0.0.
func (r Rule) matches(repo, tag string) bool {
	if !pattern.Any(r.Repositories, repo) {
		return false
	}
	for _, t := range []string{tag, strings.ToLower(tag)} {
		if r.tagRegexp != nil && r.tagRegexp.MatchString(t) || r.tagRegexp == nil && pattern.Any(r.Tags, t) {
			return true
		}
	}
	return false
}

// Match returns how tag in repository repo (a name without the registry
// host) is protected and the rule that says so: AccessoryRule for
// accessory tags (unless Accessories is Mutable), otherwise the most
// protective of the matching rules. Mutable comes with no rule.
func (rs *Rules) Match(repo, tag string) (Mode, *Rule) {
	if acc := AccessoryRule(); acc.matches(repo, tag) {
		if rs.Accessories == Mutable {
			return Mutable, nil
		}
		return AppendOnly, &acc
	}
	var best *Rule
	for i := range rs.Rules {
		r := &rs.Rules[i]
		if !r.matches(repo, tag) {
			continue
		}
		if best == nil || (best.Mode == AppendOnly && r.Mode == Immutable) {
			best = r
		}
	}
	if best == nil {
		return Mutable, nil
	}
	return best.Mode, best
}
