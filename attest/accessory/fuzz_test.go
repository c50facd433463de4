package accessory_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/opencontainers/go-digest"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/ociwf/errdef"
)

// fuzzSubject is the digest the seed bundles are about.
const fuzzSubject = "127.0.0.1:5000/wf/b@sha256:5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"

// FuzzBundle feeds arbitrary bytes to the sigstore bundle reader as a
// bundle layer read from a registry is decoded (sigstore-go's parser, v0.3
// or later, as cosign's reader requires), then verifies what decodes with
// a real key about the subject's digest, as verify does: no panic, a
// refusal is ErrVerification or ErrInvalid, a decoded bundle re-encodes
// and decodes again, and a bundle that verifies signed a statement about
// the digest. The seeds are bundles signed with testdata/fuzz-signer.key.
func FuzzBundle(f *testing.F) {
	ctx := context.Background()
	s := attesttest.Signer(f, filepath.Join("testdata", "fuzz-signer.key"))
	d, err := name.NewDigest(fuzzSubject)
	if err != nil {
		f.Fatal(err)
	}
	for _, ann := range []map[string]string{nil, {accessory.AnnotationReference: "127.0.0.1:5000/wf/b", "approved": "yes"}} {
		b, err := accessory.SignBundle(ctx, s, d, ann)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		parsed := &sgbundle.Bundle{}
		if err := parsed.UnmarshalJSON(b); err != nil {
			f.Fatal(err)
		}
		if _, err := accessory.FoundBundleOf(parsed).Verify(ctx, accessory.KeyCheckOpts(s.Verifier()), digest.Digest(d.DigestStr())); err != nil {
			f.Fatalf("seed bundle does not verify: %v", err)
		}
	}
	f.Add([]byte(`{"mediaType":"application/vnd.dev.sigstore.bundle.v0.3+json"}`))
	co := accessory.KeyCheckOpts(s.Verifier())
	dgst := d.DigestStr()
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := &sgbundle.Bundle{}
		if err := b.UnmarshalJSON(raw); err != nil || !b.MinVersion("v0.3") {
			return
		}
		again, err := b.MarshalJSON()
		if err != nil {
			t.Fatalf("a decoded bundle does not encode: %v", err)
		}
		if err := (&sgbundle.Bundle{}).UnmarshalJSON(again); err != nil {
			t.Fatalf("a decoded bundle does not decode again: %v", err)
		}
		st, err := accessory.FoundBundleOf(b).Verify(ctx, co, digest.Digest(dgst))
		if err != nil {
			if !errors.Is(err, errdef.ErrVerification) && !errors.Is(err, errdef.ErrInvalid) {
				t.Fatalf("refusal of no class: %v", err)
			}
			return
		}
		if st.Statement == nil || st.Subjects < 1 || st.PredicateType == "" {
			t.Fatalf("verified bundle with an empty statement: %+v", st)
		}
		found := false
		for _, sub := range st.Statement.Subject {
			found = found || sub.Digest["sha256"] == digest.Digest(dgst).Encoded()
		}
		if !found {
			t.Fatalf("verified bundle about another digest: %+v", st.Statement.Subject)
		}
	})
}
