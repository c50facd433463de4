package accessory_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sigstore/sigstore/pkg/signature"
	"oras.land/oras-go/v2"
	orasdef "oras.land/oras-go/v2/errdef"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/keys"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

const cdx = `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1}`

// layers returns the layer count of the manifest tagged tag, or 0 if absent.
func layers(t *testing.T, tg *target.Target, tag string) int {
	t.Helper()
	_, raw, err := oras.FetchBytes(context.Background(), tg.Storage, tag, oras.DefaultFetchBytesOptions)
	if errors.Is(err, orasdef.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return len(m.Layers)
}

func cosignTag(d digest.Digest, suffix string) string {
	return d.Algorithm().String() + "-" + d.Encoded() + suffix
}

func TestSignAttestVerifyRoundTrip(t *testing.T) {
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			ctx := context.Background()
			host := registrytest.New(t)
			o := attesttest.Opener(t)
			_, subj := attesttest.Push(t, o, host+"/wf/roundtrip:1.4.0", "build-test-release.yaml")
			key, pub := attesttest.KeyPair(t, t.TempDir(), "k")
			s := attesttest.Signer(t, key)
			reg := accessory.NewRegistry(o, accessory.RegistryOptions{Mode: mode})

			if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{Annotations: map[string]string{"team": "platform"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx)}); err != nil {
				t.Fatal(err)
			}
			v, err := accessory.LoadVerifier(ctx, pub)
			if err != nil {
				t.Fatal(err)
			}
			sigs, atts := valid(t, reg, subj, v)
			if len(sigs) != 1 || sigs[0].Mode != mode || sigs[0].Payload.Optional["team"] != "platform" || sigs[0].Payload.Optional[accessory.AnnotationTag] != subj.Tag {
				t.Fatalf("signatures %+v", sigs)
			}
			if len(atts) != 1 || atts[0].st.PredicateType != "https://cyclonedx.org/bom" || atts[0].mode != mode || !accessory.Covers(atts[0].st, subj.Digest) {
				t.Fatalf("attestations %+v", atts)
			}
			if got := atts[0].st.Subject[0].Digest["sha256"]; got != subj.Digest.Encoded() {
				t.Fatalf("statement subject %s, want %s", got, subj.Digest)
			}
		})
	}
}

func TestSignAndAttestAreIdempotent(t *testing.T) {
	ctx := context.Background()
	// A registry without tag protection, as GHCR or plain Distribution:
	// --replace rewrites the .att tag there.
	host := registrytest.Start(t, registryext.Config{Rules: &immutability.Rules{Version: immutability.Version, Accessories: immutability.Mutable}}).Addr()
	o := attesttest.Opener(t)
	tg, subj := attesttest.Push(t, o, host+"/wf/idem:1.4.0", "build-test-release.yaml")
	key, _ := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})

	for i, wantExisting := range []bool{false, true, true} {
		res, err := reg.Sign(ctx, s, subj, accessory.SignOptions{})
		if err != nil || res.Existing != wantExisting {
			t.Fatalf("sign #%d: existing=%v err=%v", i, res != nil && res.Existing, err)
		}
		res, err = reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx)})
		if err != nil || res.Existing != wantExisting {
			t.Fatalf("attest #%d: existing=%v err=%v", i, res != nil && res.Existing, err)
		}
	}
	if n := layers(t, tg, cosignTag(subj.Digest, ".sig")); n != 1 {
		t.Fatalf("%d signatures stored, want 1", n)
	}
	if n := layers(t, tg, cosignTag(subj.Digest, ".att")); n != 1 {
		t.Fatalf("%d attestations stored, want 1", n)
	}

	// A signature with another tag annotation is a new signature.
	subj2 := subj
	subj2.Tag = "latest"
	if res, err := reg.Sign(ctx, s, subj2, accessory.SignOptions{}); err != nil || res.Existing {
		t.Fatalf("sign with another tag: %+v %v", res, err)
	}
	// Append adds; Replace swaps every same-type attestation for one.
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx), Duplicates: accessory.Append}); err != nil {
		t.Fatal(err)
	}
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: "custom", Predicate: []byte("note")}); err != nil {
		t.Fatal(err)
	}
	if n := layers(t, tg, cosignTag(subj.Digest, ".att")); n != 3 {
		t.Fatalf("%d attestations after append, want 3", n)
	}
	res, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx), Duplicates: accessory.Replace})
	if err != nil || res.Replaced != 2 {
		t.Fatalf("replace: %+v %v", res, err)
	}
	if n := layers(t, tg, cosignTag(subj.Digest, ".att")); n != 2 {
		t.Fatalf("%d attestations after replace, want 2 (custom + new cyclonedx)", n)
	}

	// ociwf's registry keeps cosign tags append-only: appending works,
	// replacing is refused and changes nothing.
	tg, subj = attesttest.Push(t, o, registrytest.New(t)+"/wf/idem:1.4.0", "build-test-release.yaml")
	for _, d := range []accessory.Duplicates{accessory.KeepExisting, accessory.Append} {
		if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx), Duplicates: d}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx), Duplicates: accessory.Replace}); err == nil || !strings.Contains(err.Error(), "append-only") {
		t.Fatalf("replace on an append-only tag: %v", err)
	}
	if n := layers(t, tg, cosignTag(subj.Digest, ".att")); n != 2 {
		t.Fatalf("%d attestations after a refused replace, want 2", n)
	}
}

// valid returns the signatures and attestations stored for subj that v
// verifies, through the Find primitives the verifier uses.
func valid(t *testing.T, reg *accessory.Registry, subj accessory.Subject, v signature.Verifier) ([]accessory.FoundSignature, []checked) {
	t.Helper()
	ctx := context.Background()
	found, err := reg.Find(ctx, subj)
	if err != nil {
		t.Fatal(err)
	}
	var sigs []accessory.FoundSignature
	for _, s := range found.Signatures {
		if s.Verify(ctx, v) == nil {
			sigs = append(sigs, s)
		}
	}
	var atts []checked
	for _, a := range found.Attestations {
		if st, err := a.Verify(ctx, v); err == nil {
			atts = append(atts, checked{mode: a.Mode, st: st})
		}
	}
	return sigs, atts
}

// checked is an attestation whose signature checked out.
type checked struct {
	mode accessory.Mode
	st   *in_toto.Statement
}

// Find hands the verifier what it needs to refuse: nothing for an unsigned
// artifact, signatures another key does not verify, the tag a signature
// records, and no attestation where none was made. The rules themselves
// are the verifier's (package attest/verify).
func TestFoundEntriesVerify(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	o := attesttest.Opener(t)
	dir := t.TempDir()
	key, _ := attesttest.KeyPair(t, dir, "signer")
	_, otherPub := attesttest.KeyPair(t, dir, "other")
	s := attesttest.Signer(t, key)
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	v, err := accessory.LoadVerifier(ctx, filepath.Join(dir, "signer.pub"))
	if err != nil {
		t.Fatal(err)
	}

	_, unsigned := attesttest.Push(t, o, host+"/wf/unsigned:1.4.0", "build-test-release.yaml")
	_, old := attesttest.Push(t, o, host+"/wf/moved:1.0.0", "fan-out-fan-in.yaml")
	_, cur := attesttest.Push(t, o, host+"/wf/moved:2.0.0", "build-test-release.yaml")
	for _, subj := range []accessory.Subject{old, cur} {
		if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	otherV, err := accessory.LoadVerifier(ctx, otherPub)
	if err != nil {
		t.Fatal(err)
	}

	found, err := reg.Find(ctx, unsigned)
	if err != nil || len(found.Signatures) != 0 || len(found.Attestations) != 0 {
		t.Fatalf("unsigned: %+v %v", found, err)
	}
	found, err = reg.Find(ctx, cur)
	if err != nil || len(found.Signatures) != 1 {
		t.Fatalf("signed: %+v %v", found, err)
	}
	if err := found.Signatures[0].Verify(ctx, otherV); !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("another key: got %v, want a verification failure", err)
	}
	cases := []struct {
		name string
		subj accessory.Subject
		tag  string
	}{
		{"the right tag", cur, "2.0.0"},
		// As if 2.0.0 had been moved onto the 1.0.0 digest: the signature
		// found there records 1.0.0.
		{"moved tag", old, "1.0.0"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sigs, atts := valid(t, reg, c.subj, v)
			if len(sigs) != 1 || sigs[0].Payload.Optional[accessory.AnnotationTag] != c.tag || sigs[0].Payload.Critical.Image.DockerManifestDigest != c.subj.Digest.String() {
				t.Fatalf("signatures %+v, want one recording tag %s", sigs, c.tag)
			}
			if len(atts) != 0 {
				t.Fatalf("attestations %+v, want none", atts)
			}
		})
	}
}

func TestLoadSignerErrors(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key, _ := attesttest.KeyPair(t, dir, "k")
	garbage := filepath.Join(dir, "garbage.key")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := func(bool) ([]byte, error) { return []byte("wrong"), nil }
	cases := []struct {
		name string
		opts accessory.SignerOptions
		want string
	}{
		{"no key", accessory.SignerOptions{}, "no signing key"},
		{"key and keyless", accessory.SignerOptions{Key: key, Keyless: true}, "mutually exclusive"},
		{"wrong password", accessory.SignerOptions{Key: key, Pass: wrong}, "wrong password"},
		{"missing file", accessory.SignerOptions{Key: filepath.Join(dir, "nope.key"), Pass: attesttest.Pass}, "nope.key"},
		{"not a key", accessory.SignerOptions{Key: garbage, Pass: attesttest.Pass}, "want a cosign private key file"},
		{"unknown KMS", accessory.SignerOptions{Key: "nosuchkms://key"}, "nosuchkms://key"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, err := keys.LoadSigner(ctx, c.opts)
			if err == nil {
				s.Close()
				t.Fatal("loaded")
			}
			if !errors.Is(err, accessory.ErrKey) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want ErrKey with %q", err, c.want)
			}
		})
	}
}

func TestKeylessFailsClearlyOffline(t *testing.T) {
	s, err := keys.LoadSigner(context.Background(), accessory.SignerOptions{
		Keyless:   true,
		FulcioURL: "http://127.0.0.1:1",
		IDToken:   "not-a-token",
	})
	if err == nil {
		s.Close()
		t.Fatal("keyless signing worked without Fulcio")
	}
	if !strings.Contains(err.Error(), "keyless signing") {
		t.Fatalf("unclear error: %v", err)
	}
}

func TestWriteKeyFilesRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	key, pub := attesttest.KeyPair(t, dir, "k")
	before, _ := os.ReadFile(key)
	kp, err := accessory.GenerateKeyPair(attesttest.Pass)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := accessory.WriteKeyFiles(filepath.Join(dir, "k"), kp, false); !errors.Is(err, accessory.ErrKeyExists) {
		t.Fatalf("overwrote: %v", err)
	}
	if after, _ := os.ReadFile(key); string(after) != string(before) {
		t.Fatal("private key changed")
	}
	if fi, err := os.Stat(key); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key mode %v %v", fi.Mode(), err)
	}
	if _, err := os.Stat(pub); err != nil {
		t.Fatal(err)
	}
}

// What Prefetch read serves only its own subject; other subjects are read
// afresh, so a stale or foreign set can never hide a missing signature.
func TestPrefetchServesOnlyItsSubject(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	o := attesttest.Opener(t)
	_, a := attesttest.Push(t, o, host+"/wf/a:1.0.0", "fan-out-fan-in.yaml")
	_, b := attesttest.Push(t, o, host+"/wf/b:1.4.0", "build-test-release.yaml")
	key, _ := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	if _, err := reg.Sign(ctx, s, a, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	preA, err := reg.Prefetch(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := reg.Sign(ctx, s, a, accessory.SignOptions{Stored: preA}); err != nil || !res.Existing {
		t.Fatalf("a with its prefetch: %+v %v", res, err)
	}
	if res, err := reg.Sign(ctx, s, b, accessory.SignOptions{Stored: preA}); err != nil || res.Existing {
		t.Fatalf("b with a's prefetch: %+v %v", res, err)
	}
	rs, err := reg.AttestAll(ctx, s, b, []accessory.AttestOptions{{Type: accessory.TypeCycloneDX, Predicate: []byte(cdx)}}, preA)
	if err != nil || rs[0].Existing {
		t.Fatalf("attest b with a's prefetch: %+v %v", rs, err)
	}
}

// An existing key file is reported without naming any command's flags.
func TestWriteKeyFilesErrorNamesNoFlag(t *testing.T) {
	dir := t.TempDir()
	attesttest.KeyPair(t, dir, "k")
	kp, err := accessory.GenerateKeyPair(attesttest.Pass)
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = accessory.WriteKeyFiles(filepath.Join(dir, "k"), kp, false)
	if !errors.Is(err, accessory.ErrKeyExists) || strings.Contains(err.Error(), "--") {
		t.Fatalf("got %v", err)
	}
}

// Options that name no key, or a key and keyless signing, are invalid
// input, found without loading anything.
func TestSignerOptionsValidate(t *testing.T) {
	cases := []struct {
		name string
		opts accessory.SignerOptions
		ok   bool
	}{
		{"no key", accessory.SignerOptions{}, false},
		{"key and keyless", accessory.SignerOptions{Key: "k.key", Keyless: true}, false},
		{"key", accessory.SignerOptions{Key: "k.key"}, true},
		{"keyless", accessory.SignerOptions{Keyless: true}, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.opts.Validate()
			if c.ok != (err == nil) || (err != nil && (!errors.Is(err, errdef.ErrInvalid) || !errors.Is(err, accessory.ErrKey) || strings.Contains(err.Error(), "--"))) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

// A verification reads each attestation's statement more than once (its
// predicate type for the lifecycle chain, the statement once verified);
// an SBOM statement is large, so it is decoded once per Find, and a
// statement handed out is the caller's to change.
func TestFoundAttestationDecodesOnce(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	o := attesttest.Opener(t)
	_, subj := attesttest.Push(t, o, host+"/wf/decode:1.4.0", "build-test-release.yaml")
	key, pub := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	components := make([]string, 200)
	for i := range components {
		components[i] = `{"type":"library","name":"c` + strings.Repeat("x", i%7) + `","version":"1.0.0"}`
	}
	sbom := `{"bomFormat":"CycloneDX","specVersion":"1.6","version":1,"components":[` + strings.Join(components, ",") + `]}`
	if _, err := reg.Attest(ctx, s, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: []byte(sbom)}); err != nil {
		t.Fatal(err)
	}
	v, err := accessory.LoadVerifier(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	found, err := reg.Find(ctx, subj)
	if err != nil || len(found.Attestations) != 1 {
		t.Fatalf("find: %d attestations, %v", len(found.Attestations), err)
	}
	a := found.Attestations[0]
	claimed, err := a.Statement()
	if err != nil || claimed.PredicateType != "https://cyclonedx.org/bom" {
		t.Fatalf("statement: %+v, %v", claimed, err)
	}
	claimed.PredicateType = "changed by the caller"
	if allocs := testing.AllocsPerRun(5, func() { _, _ = a.Statement() }); allocs > 2 {
		t.Errorf("Statement: %.0f allocations a call, want at most 2 (the statement is decoded once)", allocs)
	}
	st, err := a.Verify(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	if st.PredicateType != "https://cyclonedx.org/bom" || !accessory.Covers(st, subj.Digest) {
		t.Fatalf("verified statement %s about %+v", st.PredicateType, st.Subject)
	}
	_, otherPub := attesttest.KeyPair(t, t.TempDir(), "other")
	otherV, err := accessory.LoadVerifier(ctx, otherPub)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Verify(ctx, otherV); !errors.Is(err, errdef.ErrVerification) {
		t.Fatalf("another key: got %v, want a verification failure", err)
	}
}
