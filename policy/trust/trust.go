// Package trust reads ociwf trust policies: which keys and keyless
// (Sigstore certificate) identities are trusted to sign workflows in which
// repositories, during which validity windows, how many
// distinct signers a workflow needs, which attestations it must carry
// (provenance from allowed builders and sources, an SBOM), which signed
// identity a signature must name, and what a lifecycle state means for it.
//
// A policy file is YAML with a JSON Schema (Schema; docs/policy.md). It is
// modelled on Notation's trust policy, scoped by repository, with Harbor's
// repository patterns: * matches within one path segment, ** across
// segments, and "*" alone is the fallback for every repository.
package trust

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/sigstore/sigstore-go/pkg/fulcio/certificate"
	"github.com/sigstore/sigstore-go/pkg/root"
	"go.yaml.in/yaml/v3"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/internal/pattern"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/predicate"
)

// Version is the only policy format version so far.
const Version = "ociwf.dev/trust/v1"

// Schema is the JSON Schema of a policy file.
//
//go:embed trust-policy.schema.json
var Schema []byte

// MaxPolicyBytes bounds a policy file.
const MaxPolicyBytes = 1 << 20

// ErrNoScope is returned by Policy.For when no scope covers a repository:
// nothing is trusted there.
var ErrNoScope = errors.New("no trust policy covers the repository")

// Policy is a parsed, validated trust policy.
type Policy struct {
	Version       string  `json:"version"`
	TrustPolicies []Scope `json:"trustPolicies"`
}

// Scope is one trust policy: the rules for the repositories it names.
type Scope struct {
	Name           string         `json:"name"`
	RegistryScopes []string       `json:"registryScopes"`
	SignedIdentity SignedIdentity `json:"signedIdentity,omitzero"`
	Signers        []Signer       `json:"signers,omitempty"`
	// Threshold is the minimum number of distinct trusted signers; at
	// least 1.
	Threshold int            `json:"threshold,omitempty"`
	Require   Requirements   `json:"require,omitzero"`
	Lifecycle LifecycleRules `json:"lifecycle,omitzero"`
	// Skip accepts without verifying. Verifiers must report it loudly.
	Skip bool `json:"skip,omitempty"`
}

// IdentityType says which docker-reference a signature must name.
type IdentityType string

// Signed identity rules, as containers/image names them.
const (
	// Exact: the signature names the repository being verified.
	Exact IdentityType = "exact"
	// MatchRepository: the signature names the repository, with any tag.
	MatchRepository IdentityType = "matchRepository"
	// Remap: the signature names the repository with Prefix replaced by
	// SignedPrefix, for mirrors and air-gapped copies.
	Remap IdentityType = "remap"
	// DigestOnly: the signature need not name any repository; it counts
	// for the digest wherever the artifact is stored. Signatures are then
	// replayable across repositories: this is what accepts sigstore
	// bundle signatures that bind only the digest (stock cosign v3 sign
	// without -a dev.ociwf.reference=REPOSITORY).
	DigestOnly IdentityType = "digestOnly"
)

// SignedIdentity is the rule for the docker-reference in signed payloads.
// The zero value means Exact.
type SignedIdentity struct {
	Type         IdentityType `json:"type"`
	Prefix       string       `json:"prefix,omitempty"`
	SignedPrefix string       `json:"signedPrefix,omitempty"`
}

// Signer is a trusted key, or a keyless (Sigstore certificate) identity,
// and the window in which its signatures count. Exactly one of Key and
// Keyless is set.
type Signer struct {
	Name string `json:"name"`
	// Key is a PEM public key file (absolute after Load) or a KMS URI.
	Key string `json:"key,omitempty"`
	// Keyless is a certificate identity checked against a Sigstore
	// trusted root, as cosign's --certificate-identity and
	// --certificate-oidc-issuer flags do.
	Keyless   *Keyless   `json:"keyless,omitempty"`
	NotBefore *time.Time `json:"notBefore,omitempty"`
	NotAfter  *time.Time `json:"notAfter,omitempty"`
}

// Keyless is a keyless signer: who a short-lived Fulcio certificate must
// name, which trusted root its chain, transparency log entries and
// timestamps are checked against, and how many of those are required.
// Exactly one of Identity and IdentityRegexp is set, and exactly one of
// Issuer and IssuerRegexp; regular expressions are Go's (RE2), unanchored
// as in cosign.
type Keyless struct {
	// TrustedRoot is a Sigstore trusted_root.json file (absolute after
	// Load).
	TrustedRoot string `json:"trustedRoot"`
	// Identity is the certificate's subject alternative name (an e-mail
	// address or a workflow URI), compared exactly.
	Identity string `json:"identity,omitempty"`
	// IdentityRegexp matches the subject alternative name.
	IdentityRegexp string `json:"identityRegexp,omitempty"`
	// Issuer is the OIDC issuer recorded in the certificate, compared
	// exactly.
	Issuer string `json:"issuer,omitempty"`
	// IssuerRegexp matches the OIDC issuer.
	IssuerRegexp string `json:"issuerRegexp,omitempty"`
	// Claims are further Fulcio certificate extensions (GitHub workflow
	// repository, ref and trigger, source repository URI, build signer
	// URI, ...); every field set must equal the certificate's exactly.
	// Issuer is not a claim: use Issuer or IssuerRegexp.
	Claims certificate.Extensions `json:"claims,omitzero"`
	// TLog is the transparency log requirement. After Parse or Validate
	// Required is never nil: the default is a required entry.
	TLog TLogRequirement `json:"tlog,omitzero"`
	// Timestamps are the signed (RFC 3161) timestamp requirements.
	Timestamps TimestampRequirement `json:"timestamps,omitzero"`
}

// TLogRequirement says whether, and how many, verified transparency log
// entries a keyless signature needs.
type TLogRequirement struct {
	// Required is true unless the policy says required: false; nil only
	// before validation.
	Required *bool `json:"required,omitempty"`
	// Threshold is the number of entries required; 1 when Required and
	// unset.
	Threshold int `json:"threshold,omitempty"`
}

// TimestampRequirement is how many signed timestamps from the trusted
// root's timestamping authorities a keyless signature needs.
type TimestampRequirement struct {
	// Signed is the number of RFC 3161 timestamps required; 0 requires
	// none.
	Signed int `json:"signed,omitempty"`
}

// TLogThreshold returns the number of transparency log entries required,
// 0 when none is.
func (k Keyless) TLogThreshold() int {
	if k.TLog.Required != nil && !*k.TLog.Required {
		return 0
	}
	if k.TLog.Threshold == 0 {
		return 1
	}
	return k.TLog.Threshold
}

// ValidAt reports whether t falls in the signer's window. Without a
// trusted timestamp on a signature, verifiers pass the verification time:
// a key past NotAfter then no longer vouches for anything.
func (s Signer) ValidAt(t time.Time) bool {
	return (s.NotBefore == nil || !t.Before(*s.NotBefore)) && (s.NotAfter == nil || !t.After(*s.NotAfter))
}

// Requirements are what a verified workflow must carry beyond signatures.
type Requirements struct {
	// Attestations are predicate types (cosign names or URIs).
	Attestations []string `json:"attestations,omitempty"`
	// Builders are allowed SLSA builder.id patterns; empty allows any.
	Builders []string `json:"builders,omitempty"`
	// Sources are allowed provenance source URI patterns; empty allows any.
	Sources []string `json:"sources,omitempty"`
}

// BuilderAllowed reports whether a provenance builder.id is allowed.
func (r Requirements) BuilderAllowed(id string) bool { return pattern.Any(r.Builders, id) }

// SourceAllowed reports whether a provenance source URI is allowed.
func (r Requirements) SourceAllowed(uri string) bool { return pattern.Any(r.Sources, uri) }

// Action is what a lifecycle state means for verification.
type Action string

// Actions.
const (
	Allow Action = "allow"
	Warn  Action = "warn"
	Deny  Action = "deny"
)

// LifecycleRules say what a lifecycle state means for verification and
// who may move a version through the lifecycle (package
// policy/lifecycle). Zero action fields take the defaults: deprecated
// warns, retired (and archived) denies; draft, review and approved
// versions are always denied (cannot_be_executed).
type LifecycleRules struct {
	Deprecated Action `json:"deprecated,omitempty"`
	Retired    Action `json:"retired,omitempty"`
	// Signers are governance identities (submitters, approvers, release
	// managers, emergency approvers) besides the scope's workflow
	// signers. Their signatures count only for the lifecycle facts their
	// roles allow, never as workflow signatures.
	Signers []Signer `json:"signers,omitempty"`
	// Roles name, from Signers and the scope's signers, who may submit,
	// approve (a threshold of a set), publish, deprecate, retire and
	// archive, and the emergency approver set. A role listing nobody
	// falls to the scope's workflow signers; approvals are required only
	// when approve names a set.
	lifecycle.Roles
}

// For returns the action for a lifecycle state.
func (l LifecycleRules) For(state lifecycle.State) Action {
	switch state {
	case lifecycle.Published:
		return Allow
	case lifecycle.Deprecated:
		if l.Deprecated != "" {
			return l.Deprecated
		}
		return Warn
	case lifecycle.Retired, lifecycle.Archived:
		if l.Retired != "" {
			return l.Retired
		}
		return Deny
	case lifecycle.Quarantined:
		// A failed integrity check: no policy allows it.
		return Deny
	}
	return Deny
}

// LifecycleSigners returns every signer whose signatures on lifecycle
// facts are checked: the scope's workflow signers, then its lifecycle
// signers.
func (s *Scope) LifecycleSigners() []Signer {
	return append(append([]Signer(nil), s.Signers...), s.Lifecycle.Signers...)
}

// SignerNames returns the names of the scope's workflow signers.
func (s *Scope) SignerNames() []string {
	out := make([]string, len(s.Signers))
	for i, sg := range s.Signers {
		out[i] = sg.Name
	}
	return out
}

// Error is a policy file problem: where and what.
type Error struct {
	File string
	// Path is a JSON pointer into the document, e.g.
	// /trustPolicies/0/signers/1/notAfter.
	Path string
	Msg  string
}

func (e *Error) Error() string {
	if e.Path == "" {
		return fmt.Sprintf("%s: %s", e.File, e.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", e.File, e.Path, e.Msg)
}

// Is makes every policy error match errdef.ErrInvalid.
func (e *Error) Is(target error) bool { return target == errdef.ErrInvalid }

// Load reads and parses the policy file at path. Relative key files and
// trusted roots are resolved against the policy file's directory and
// become absolute paths; each trusted root must load as a Sigstore
// trusted_root.json.
func Load(path string) (*Policy, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trust policy: %w", err)
	}
	defer f.Close()
	src, err := io.ReadAll(io.LimitReader(f, MaxPolicyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("trust policy %s: %w", path, err)
	}
	p, err := Parse(path, src)
	if err != nil {
		return nil, err
	}
	// The directory is made absolute now: relative to the working
	// directory, it would name another one after a chdir.
	dir, err := filepath.Abs(filepath.Dir(path))
	if err != nil {
		return nil, fmt.Errorf("trust policy %s: %w", path, err)
	}
	for i := range p.TrustPolicies {
		sc := &p.TrustPolicies[i]
		for _, list := range []struct {
			at      string
			signers []Signer
		}{{"signers", sc.Signers}, {"lifecycle/signers", sc.Lifecycle.Signers}} {
			for j := range list.signers {
				sg := &list.signers[j]
				if k := &sg.Key; *k != "" && !strings.Contains(*k, "://") && !filepath.IsAbs(*k) {
					*k = filepath.Join(dir, *k)
				}
				if sg.Keyless == nil {
					continue
				}
				tr := &sg.Keyless.TrustedRoot
				if !filepath.IsAbs(*tr) {
					*tr = filepath.Join(dir, *tr)
				}
				if _, err := root.NewTrustedRootFromPath(*tr); err != nil {
					return nil, &Error{File: path, Path: fmt.Sprintf("/trustPolicies/%d/%s/%d/keyless/trustedRoot", i, list.at, j), Msg: fmt.Sprintf("trusted root: %v", err)}
				}
			}
		}
	}
	return p, nil
}

// Parse validates src against Schema and the rules the schema cannot say,
// and returns the policy. Errors are *Error values naming file and path.
func Parse(file string, src []byte) (*Policy, error) {
	if len(src) > MaxPolicyBytes {
		return nil, fmt.Errorf("%w: %w", &Error{File: file, Msg: fmt.Sprintf("larger than %d bytes", MaxPolicyBytes)}, errdef.ErrTooLarge)
	}
	var doc any
	if err := yaml.Unmarshal(src, &doc); err != nil {
		return nil, &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "yaml: ")}
	}
	doc = jsonable(doc)
	raw, err := json.Marshal(doc)
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if err := compiled().Validate(inst); err != nil {
		return nil, schemaError(file, err)
	}
	var p Policy
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, &Error{File: file, Msg: err.Error()}
	}
	if err := p.check(file); err != nil {
		return nil, err
	}
	return &p, nil
}

// jsonable turns what YAML decoding produced into JSON values: timestamps
// become RFC 3339 strings, maps get string keys.
func jsonable(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = jsonable(e)
		}
		return v
	case map[any]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[fmt.Sprint(k)] = jsonable(e)
		}
		return m
	case []any:
		for i, e := range v {
			v[i] = jsonable(e)
		}
		return v
	case time.Time:
		return v.Format(time.RFC3339Nano)
	}
	return v
}

// compiled compiles Schema; it cannot fail for the embedded schema, which
// a test compiles.
func compiled() *jsonschema.Schema {
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(Schema))
	if err == nil {
		err = c.AddResource("trust-policy.schema.json", doc)
	}
	if err != nil {
		panic(err)
	}
	return c.MustCompile("trust-policy.schema.json")
}

// schemaError reports the most specific schema violation.
func schemaError(file string, err error) error {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return &Error{File: file, Msg: err.Error()}
	}
	for len(ve.Causes) > 0 {
		ve = ve.Causes[0]
	}
	return &Error{File: file, Path: "/" + strings.Join(ve.InstanceLocation, "/"), Msg: ve.ErrorKind.LocalizedString(message.NewPrinter(language.English))}
}

// check enforces what the schema cannot express.
// Validate checks the rules Parse enforces beyond the schema (unique
// names and scopes, valid patterns, windows, thresholds), for policies
// built in code.
func (p *Policy) Validate() error {
	if p.Version != Version {
		return &Error{File: "policy", Path: "/version", Msg: fmt.Sprintf("version %q, want %q", p.Version, Version)}
	}
	return p.check("policy")
}

func (p *Policy) check(file string) error {
	fail := func(path, format string, args ...any) error {
		return &Error{File: file, Path: path, Msg: fmt.Sprintf(format, args...)}
	}
	names := map[string]bool{}
	scopes := map[string]string{}
	for i, s := range p.TrustPolicies {
		at := fmt.Sprintf("/trustPolicies/%d", i)
		if names[s.Name] {
			return fail(at+"/name", "duplicate policy name %q", s.Name)
		}
		names[s.Name] = true
		for j, sc := range s.RegistryScopes {
			if other, ok := scopes[sc]; ok {
				return fail(fmt.Sprintf("%s/registryScopes/%d", at, j), "scope %q is already in policy %q", sc, other)
			}
			scopes[sc] = s.Name
			if sc != "*" && (!pattern.Valid(sc) || strings.Contains(sc, "://") || !strings.Contains(sc, "/")) {
				return fail(fmt.Sprintf("%s/registryScopes/%d", at, j), "scope %q: want registry/repository, * or ** patterns, or \"*\"", sc)
			}
		}
		if s.Skip {
			if len(s.Signers) > 0 || s.Threshold > 0 {
				return fail(at, "a policy that skips verification takes no signers or threshold")
			}
			continue
		}
		if len(s.Signers) == 0 {
			return fail(at+"/signers", "no signers: list trusted keys, or set skip: true to accept without verification")
		}
		if s.Threshold == 0 {
			p.TrustPolicies[i].Threshold = 1
		} else if s.Threshold > len(s.Signers) {
			return fail(at+"/threshold", "threshold %d exceeds the %d signers listed", s.Threshold, len(s.Signers))
		}
		signers := map[string]bool{}
		keys := map[string]string{} // signer name by key
		for _, list := range []struct {
			at      string
			signers []Signer
		}{{"signers", s.Signers}, {"lifecycle/signers", s.Lifecycle.Signers}} {
			for j, sg := range list.signers {
				sat := fmt.Sprintf("%s/%s/%d", at, list.at, j)
				if signers[sg.Name] {
					return fail(sat+"/name", "duplicate signer %q", sg.Name)
				}
				signers[sg.Name] = true
				if sg.NotBefore != nil && sg.NotAfter != nil && !sg.NotBefore.Before(*sg.NotAfter) {
					return fail(sat, "notBefore %s is not before notAfter %s", sg.NotBefore.Format(time.RFC3339), sg.NotAfter.Format(time.RFC3339))
				}
				if (sg.Key == "") == (sg.Keyless == nil) {
					return fail(sat, "a signer has either a key or keyless, not both or neither")
				}
				// One key under two names would count twice towards
				// the approvals a lifecycle role needs.
				if k := sameKey(sg.Key); k != "" {
					if other, ok := keys[k]; ok {
						return fail(sat+"/key", "signers %q and %q have the same key: a key is one signer; name it once and list that name in every role it has", other, sg.Name)
					}
					keys[k] = sg.Name
				}
				if sg.Keyless != nil {
					if err := checkKeyless(sg.Keyless, sat+"/keyless", fail); err != nil {
						return err
					}
				}
			}
		}
		if err := checkRoles(&p.TrustPolicies[i].Lifecycle.Roles, signers, at+"/lifecycle", fail); err != nil {
			return err
		}
		for j, t := range s.Require.Attestations {
			if _, err := predicate.URI(t); err != nil {
				return fail(fmt.Sprintf("%s/require/attestations/%d", at, j), "predicate type %q: want slsaprovenance1, cyclonedx, another cosign type name or a URI", t)
			}
		}
		for _, list := range []struct {
			name string
			pats []string
		}{{"builders", s.Require.Builders}, {"sources", s.Require.Sources}} {
			for j, pat := range list.pats {
				if !pattern.Valid(pat) {
					return fail(fmt.Sprintf("%s/require/%s/%d", at, list.name, j), "bad pattern %q", pat)
				}
			}
		}
		if s.SignedIdentity.Type == "" {
			p.TrustPolicies[i].SignedIdentity.Type = Exact
		}
	}
	return nil
}

// sameKey is the form in which two key references name the same key
// file: cleaned paths, KMS URIs as they are; "" for no key.
func sameKey(key string) string {
	if key == "" || strings.Contains(key, "://") {
		return key
	}
	return filepath.Clean(key)
}

// checkRoles validates a scope's lifecycle roles against the signer names
// it defines and fills the quorums' default threshold (1).
func checkRoles(r *lifecycle.Roles, names map[string]bool, at string, fail func(path, format string, args ...any) error) error {
	for _, l := range []struct {
		name string
		list []string
	}{{"submit", r.Submit}, {"publish", r.Publish}, {"deprecate", r.Deprecate}, {"retire", r.Retire}, {"archive", r.Archive},
		{"quarantine", r.Quarantine}, {"release", r.Release},
		{"approve/signers", r.Approve.Signers}, {"emergency/signers", r.Emergency.Signers}} {
		for j, n := range l.list {
			if !names[n] {
				return fail(fmt.Sprintf("%s/%s/%d", at, l.name, j), "no signer named %q in this trust policy's signers or lifecycle signers", n)
			}
			// A quorum of [bob, bob] could never be met by distinct
			// signers; the schema says so for files, this for code.
			if slices.Index(l.list, n) < j {
				return fail(fmt.Sprintf("%s/%s/%d", at, l.name, j), "signer %q is listed twice", n)
			}
		}
	}
	for _, q := range []struct {
		name string
		q    *lifecycle.Quorum
	}{{"approve", &r.Approve}, {"emergency", &r.Emergency}} {
		switch {
		case q.q.Threshold < 0:
			return fail(at+"/"+q.name+"/threshold", "threshold %d: want at least 1", q.q.Threshold)
		case len(q.q.Signers) == 0 && q.q.Threshold > 0:
			return fail(at+"/"+q.name+"/threshold", "a threshold without signers")
		case len(q.q.Signers) > 0 && q.q.Threshold == 0:
			q.q.Threshold = 1
		case q.q.Threshold > len(q.q.Signers):
			return fail(at+"/"+q.name+"/threshold", "threshold %d exceeds the %d signers listed", q.q.Threshold, len(q.q.Signers))
		}
	}
	return nil
}

// checkKeyless validates a keyless signer at the JSON pointer at and
// fills its defaults.
func checkKeyless(k *Keyless, at string, fail func(path, format string, args ...any) error) error {
	if k.TrustedRoot == "" {
		return fail(at+"/trustedRoot", "a keyless signer needs a trustedRoot (a Sigstore trusted_root.json file)")
	}
	for _, m := range []struct{ field, value, re string }{
		{"identity", k.Identity, k.IdentityRegexp},
		{"issuer", k.Issuer, k.IssuerRegexp},
	} {
		switch {
		case (m.value == "") == (m.re == ""):
			return fail(at, "want exactly one of %s and %sRegexp", m.field, m.field)
		case m.re != "":
			if _, err := regexp.Compile(m.re); err != nil {
				return fail(at+"/"+m.field+"Regexp", "bad regular expression %q: %v", m.re, err)
			}
		}
	}
	if k.Claims.Issuer != "" {
		return fail(at+"/claims/issuer", "the issuer is not a claim: use issuer or issuerRegexp")
	}
	if k.TLog.Required == nil {
		required := true
		k.TLog.Required = &required
	}
	if !*k.TLog.Required && k.TLog.Threshold > 0 {
		return fail(at+"/tlog/threshold", "a threshold for a transparency log that is not required")
	}
	if k.TLogThreshold() == 0 && k.Timestamps.Signed == 0 {
		return fail(at, "no trusted time for a short-lived certificate: require the transparency log (tlog) or signed timestamps (timestamps.signed)")
	}
	return nil
}

// For returns the scope governing repo (registry/repository): an exact
// scope first, then the most specific pattern (the longest literal prefix;
// equal ones in file order), then "*". ErrNoScope means nothing is trusted
// for repo.
func (p *Policy) For(repo string) (*Scope, error) {
	var best *Scope
	bestRank := -1
	for i := range p.TrustPolicies {
		s := &p.TrustPolicies[i]
		for _, sc := range s.RegistryScopes {
			rank := -1
			switch {
			case sc == repo:
				rank = 1 << 30
			case sc == "*":
				rank = 0
			default:
				if pattern.Any([]string{sc}, repo) {
					rank = 1 + literalPrefix(sc)
				}
			}
			if rank > bestRank {
				best, bestRank = s, rank
			}
		}
	}
	if best == nil {
		return nil, fmt.Errorf("%s: %w (add a trust policy whose registryScopes match it)", repo, ErrNoScope)
	}
	return best, nil
}

func literalPrefix(pattern string) int {
	if i := strings.IndexAny(pattern, "*?[{\\"); i >= 0 {
		return i
	}
	return len(pattern)
}

// SignedReference returns the repository a signature for repo must name
// under s's signed identity rule. Remapping applies at path-segment boundaries only: prefix reg/team
// remaps reg/team and reg/team/wf, never reg/team-evil/wf.
func (s *Scope) SignedReference(repo string) string {
	if s.SignedIdentity.Type != Remap {
		return repo
	}
	prefix := strings.TrimSuffix(s.SignedIdentity.Prefix, "/")
	rest, ok := strings.CutPrefix(repo, prefix)
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return repo
	}
	return strings.TrimSuffix(s.SignedIdentity.SignedPrefix, "/") + rest
}

// AcceptsIdentity reports whether a signed docker-reference is acceptable
// for repo: the signed reference itself, or (MatchRepository) that
// repository with a tag or digest, or (DigestOnly) any.
func (s *Scope) AcceptsIdentity(repo, signed string) bool {
	if s.SignedIdentity.Type == DigestOnly {
		return true
	}
	want := s.SignedReference(repo)
	if signed == want {
		return true
	}
	if s.SignedIdentity.Type == MatchRepository {
		rest, ok := strings.CutPrefix(signed, want)
		return ok && (strings.HasPrefix(rest, ":") || strings.HasPrefix(rest, "@"))
	}
	return false
}

// KeyPolicyOptions tune KeyPolicy.
type KeyPolicyOptions struct {
	// SignatureOnly drops the attestation requirements, for artifacts
	// signed by other tools.
	SignatureOnly bool
	// SignedIdentity names the repository the signatures were made for,
	// when verifying a mirror of it.
	SignedIdentity string
	// Attestations are further predicate types (names or URIs, as in a
	// policy file) that must each be attested; Validate checks them.
	Attestations []string
	// Name names the scope in reports; empty means "key".
	Name string
}

// DefaultAttestations returns what `ociwf publish` attaches and what a
// one-key policy requires unless SignatureOnly is set.
func DefaultAttestations() []string { return []string{"slsaprovenance1", "cyclonedx"} }

// KeyPolicy is the policy of one trusted key for the repository repo: a
// valid signature naming it (or opts.SignedIdentity), and the SLSA v1
// provenance and CycloneDX SBOM attestations (unless opts.SignatureOnly)
// and opts.Attestations.
func KeyPolicy(key, repo string, opts KeyPolicyOptions) *Policy {
	name := opts.Name
	if name == "" {
		name = "key"
	}
	s := Scope{
		Name:           name,
		RegistryScopes: []string{repo},
		SignedIdentity: SignedIdentity{Type: Exact},
		Signers:        []Signer{{Name: key, Key: key}},
		Threshold:      1,
	}
	if opts.SignedIdentity != "" && opts.SignedIdentity != repo {
		s.SignedIdentity = SignedIdentity{Type: Remap, Prefix: repo, SignedPrefix: opts.SignedIdentity}
	}
	if !opts.SignatureOnly {
		s.Require.Attestations = DefaultAttestations()
	}
	s.Require.Attestations = append(s.Require.Attestations, opts.Attestations...)
	return &Policy{Version: Version, TrustPolicies: []Scope{s}}
}
