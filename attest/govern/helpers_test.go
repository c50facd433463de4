package govern_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/govern"
	"ociwf.dev/attest/internal/attesttest"
	signkeys "ociwf.dev/attest/keys"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

const sample = "build-test-release.yaml"

// The people: alice writes workflows (the scope's workflow signer); bob
// and carol review; rm is a release manager; sec1 and sec2 are the
// emergency approvers; mallory's key is in no policy.
var people = []string{"alice", "bob", "carol", "rm", "sec1", "sec2", "mallory"}

// keyring holds every person's signer and public key file. Generating
// and decrypting keys is slow, so TestMain makes them once.
type keyring struct {
	signer map[string]*accessory.Signer
	pub    map[string]string
}

var keys keyring

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "govern-keys")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := func() int {
		keys = keyring{signer: map[string]*accessory.Signer{}, pub: map[string]string{}}
		for _, p := range people {
			kp, err := accessory.GenerateKeyPair(attesttest.Pass)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			key, pub, err := accessory.WriteKeyFiles(filepath.Join(dir, p), kp, false)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			s, err := signkeys.LoadSigner(context.Background(), accessory.SignerOptions{Key: key, Pass: attesttest.Pass})
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer s.Close()
			keys.signer[p], keys.pub[p] = s, pub
		}
		return m.Run()
	}()
	os.RemoveAll(dir)
	os.Exit(code)
}

// reviewed are the roles of a scope whose versions need two approvals
// of alice, bob and carol (alice may review others' work, not her own);
// alice and rm publish, alice deprecates and retires; sec1 and sec2
// together may retire in an emergency.
func reviewed() lifecycle.Roles {
	return lifecycle.Roles{
		Approve:   lifecycle.Quorum{Signers: []string{"alice", "bob", "carol"}, Threshold: 2},
		Publish:   []string{"alice", "rm"},
		Emergency: lifecycle.Quorum{Signers: []string{"sec1", "sec2"}, Threshold: 2},
	}
}

// policy is the trust policy for host/wf/**: alice signs workflows; bob,
// carol, rm, sec1 and sec2 are lifecycle signers with roles r.
func policy(host string, r lifecycle.Roles) *trust.Policy {
	var lc []trust.Signer
	for _, p := range []string{"bob", "carol", "rm", "sec1", "sec2"} {
		lc = append(lc, trust.Signer{Name: p, Key: keys.pub[p]})
	}
	return &trust.Policy{Version: trust.Version, TrustPolicies: []trust.Scope{{
		Name:           "wf",
		RegistryScopes: []string{host + "/wf/**"},
		Signers:        []trust.Signer{{Name: "alice", Key: keys.pub["alice"]}},
		Lifecycle:      trust.LifecycleRules{Signers: lc, Roles: r},
	}}}
}

// env is a registry, the policy for it and a way to write to it.
type env struct {
	t    *testing.T
	host string
	root string
	o    *target.Opener
	pol  *trust.Policy
	// reg writes in the storage form under test; Find through it reads
	// every form.
	reg *accessory.Registry
}

// extension starts the ociwf registry, with its default rules
// (accessory tags append-only).
func extension(t *testing.T, r lifecycle.Roles, ro accessory.RegistryOptions) *env {
	root := t.TempDir()
	srv := registrytest.Start(t, registryext.Config{Root: root})
	return newEnv(t, srv.Addr(), root, r, ro)
}

// plain starts stock Distribution, which allows deletes and rewrites.
func plain(t *testing.T, r lifecycle.Roles, ro accessory.RegistryOptions) *env {
	root := t.TempDir()
	return newEnv(t, registrytest.StartPlain(t, root), root, r, ro)
}

func newEnv(t *testing.T, host, root string, r lifecycle.Roles, ro accessory.RegistryOptions) *env {
	o := attesttest.Opener(t)
	return &env{t: t, host: host, root: root, o: o, pol: policy(host, r), reg: accessory.NewRegistry(o, ro)}
}

func (e *env) verifier(opts verify.Options) *verify.Verifier {
	e.t.Helper()
	v, err := verify.New(e.pol, e.o, opts)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// recorder returns a Recorder reading through a verifier with opts and
// writing through e.reg.
func (e *env) recorder(opts verify.Options) *govern.Recorder {
	e.t.Helper()
	rec, err := govern.New(e.verifier(opts), e.reg, govern.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// push pushes build b (nil: the sample) unsigned to ref, a draft.
func (e *env) push(ref string, b *ociwf.Build) accessory.Subject {
	e.t.Helper()
	ctx := context.Background()
	if b == nil {
		b = attesttest.Sample(e.t, sample)
	}
	tg, err := e.o.Open(ctx, ref)
	if err != nil {
		e.t.Fatal(err)
	}
	desc, err := ociwf.Push(ctx, tg.Storage, b, tg.Reference, ociwf.PushOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return accessory.Subject{Repository: tg.Name, Digest: desc.Digest, Tag: tg.Reference}
}

// sign signs subj as alice, as the publish ceremony does.
func (e *env) sign(subj accessory.Subject) {
	e.t.Helper()
	if _, err := e.reg.Sign(context.Background(), keys.signer["alice"], subj, accessory.SignOptions{}); err != nil {
		e.t.Fatal(err)
	}
}

// stored counts the lifecycle statements stored for subj, in each form.
func (e *env) stored(subj accessory.Subject) (legacy, bundles int) {
	e.t.Helper()
	f, err := e.reg.Find(context.Background(), subj)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range f.Attestations {
		if st, err := a.Statement(); err == nil && isLifecycle(st.PredicateType) {
			legacy++
		}
	}
	for _, b := range f.Bundles {
		env, err := b.Bundle().Envelope()
		if err != nil {
			continue
		}
		if st, err := env.Statement(); err == nil && isLifecycle(st.GetPredicateType()) {
			bundles++
		}
	}
	return legacy, bundles
}

func isLifecycle(t string) bool {
	return t == lifecycle.EventPredicateType || t == lifecycle.ApprovalPredicateType
}

// attestEvent stores ev as an event signed by who, bypassing govern's
// checks, as a hand-rolled tool or an attacker with a key would.
func (e *env) attestEvent(subj accessory.Subject, who string, ev lifecycle.Event) string {
	e.t.Helper()
	raw, err := ev.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.attest(subj, who, lifecycle.EventPredicateType, raw)
	id, _ := ev.ID()
	return id
}

func (e *env) attestApproval(subj accessory.Subject, who string, a lifecycle.Approval) string {
	e.t.Helper()
	raw, err := a.Marshal()
	if err != nil {
		e.t.Fatal(err)
	}
	e.attest(subj, who, lifecycle.ApprovalPredicateType, raw)
	id, _ := a.ID()
	return id
}

func (e *env) attest(subj accessory.Subject, who, predicateType string, raw []byte) {
	e.t.Helper()
	if _, err := e.reg.Attest(context.Background(), keys.signer[who], subj, accessory.AttestOptions{Type: predicateType, Predicate: raw, Duplicates: accessory.Append}); err != nil {
		e.t.Fatal(err)
	}
}

// repository opens subj's repository for raw manifest surgery.
func (e *env) repository(subj accessory.Subject) *remote.Repository {
	e.t.Helper()
	tg, err := e.o.Open(context.Background(), subj.String())
	if err != nil {
		e.t.Fatal(err)
	}
	repo, ok := tg.Storage.(*remote.Repository)
	if !ok {
		e.t.Fatalf("storage %T", tg.Storage)
	}
	return repo
}

// layerIDs returns the lifecycle fact ID of each layer of manifest m
// ("" for other layers).
func layerIDs(t *testing.T, ctx context.Context, repo *remote.Repository, m ocispec.Manifest) []string {
	t.Helper()
	out := make([]string, len(m.Layers))
	for i, l := range m.Layers {
		blob, err := content.FetchAll(ctx, repo, l)
		if err != nil {
			t.Fatal(err)
		}
		var env struct {
			Payload string `json:"payload"`
		}
		if json.Unmarshal(blob, &env) != nil || env.Payload == "" {
			continue
		}
		payload, err := base64.StdEncoding.DecodeString(env.Payload)
		if err != nil {
			continue
		}
		var st struct {
			PredicateType string          `json:"predicateType"`
			Predicate     json.RawMessage `json:"predicate"`
		}
		if json.Unmarshal(payload, &st) != nil {
			continue
		}
		switch st.PredicateType {
		case lifecycle.EventPredicateType:
			_, out[i], _ = lifecycle.DecodeEvent(st.Predicate)
		case lifecycle.ApprovalPredicateType:
			_, out[i], _ = lifecycle.DecodeApproval(st.Predicate)
		}
	}
	return out
}

// dropFromAttTag rewrites subj's .att manifest without the layer holding
// fact id, as someone with push access to a plain registry can.
func (e *env) dropFromAttTag(subj accessory.Subject, id string) {
	e.t.Helper()
	ctx := context.Background()
	repo := e.repository(subj)
	tag := subj.Digest.Algorithm().String() + "-" + subj.Digest.Encoded() + ".att"
	desc, raw, err := oras.FetchBytes(ctx, repo, tag, oras.DefaultFetchBytesOptions)
	if err != nil {
		e.t.Fatal(err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatal(err)
	}
	ids := layerIDs(e.t, ctx, repo, m)
	var kept []ocispec.Descriptor
	for i, l := range m.Layers {
		if ids[i] != id {
			kept = append(kept, l)
		}
	}
	if len(kept) != len(m.Layers)-1 {
		e.t.Fatalf("%s is in %d of the %d layers of %s", id, len(m.Layers)-len(kept), len(m.Layers), tag)
	}
	m.Layers = kept
	raw, _ = json.Marshal(m)
	if _, err := oras.TagBytes(ctx, repo, desc.MediaType, raw, tag); err != nil {
		e.t.Fatal(err)
	}
}

// deleteReferrer deletes the referrer manifest holding fact id.
func (e *env) deleteReferrer(subj accessory.Subject, id string) {
	e.t.Helper()
	ctx := context.Background()
	repo := e.repository(subj)
	sd, err := repo.Resolve(ctx, subj.Digest.String())
	if err != nil {
		e.t.Fatal(err)
	}
	var found []ocispec.Descriptor
	err = repo.Referrers(ctx, sd, "", func(refs []ocispec.Descriptor) error {
		for _, r := range refs {
			raw, err := content.FetchAll(ctx, repo, r)
			if err != nil {
				return err
			}
			var m ocispec.Manifest
			if err := json.Unmarshal(raw, &m); err != nil {
				continue
			}
			for _, got := range layerIDs(e.t, ctx, repo, m) {
				if got == id {
					found = append(found, r)
				}
			}
		}
		return nil
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if len(found) != 1 {
		e.t.Fatalf("%s is in %d referrers", id, len(found))
	}
	if err := repo.Manifests().Delete(ctx, found[0]); err != nil {
		e.t.Fatal(err)
	}
}

// drop removes fact id from the registry wherever e writes it.
func (e *env) drop(subj accessory.Subject, id string) {
	e.t.Helper()
	if e.reg.Mode() == accessory.Referrers {
		e.deleteReferrer(subj, id)
		return
	}
	e.dropFromAttTag(subj, id)
}

// changed is the sample with one line changed: another version.
func changed(t *testing.T) *ociwf.Build {
	t.Helper()
	src := bytes.Replace(attesttest.Sample(t, sample).Source, []byte("version: 1.4.0"), []byte("version: 1.4.1"), 1)
	b, err := ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: sample})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyToAttTag copies the layer holding fact id from the .att manifest of
// from to the .att manifest of to, signature and all, as anyone with push
// access to to's repository can: a replay of a signed statement stored
// for another repository.
func (e *env) copyToAttTag(from, to accessory.Subject, id string) {
	e.t.Helper()
	ctx := context.Background()
	src, dst := e.repository(from), e.repository(to)
	tag := func(s accessory.Subject) string {
		return s.Digest.Algorithm().String() + "-" + s.Digest.Encoded() + ".att"
	}
	_, raw, err := oras.FetchBytes(ctx, src, tag(from), oras.DefaultFetchBytesOptions)
	if err != nil {
		e.t.Fatal(err)
	}
	var sm ocispec.Manifest
	if err := json.Unmarshal(raw, &sm); err != nil {
		e.t.Fatal(err)
	}
	var layer *ocispec.Descriptor
	for i, got := range layerIDs(e.t, ctx, src, sm) {
		if got == id {
			layer = &sm.Layers[i]
		}
	}
	if layer == nil {
		e.t.Fatalf("%s is not in %s of %s", id, tag(from), from.Repository)
	}
	blob, err := content.FetchAll(ctx, src, *layer)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := dst.Blobs().Push(ctx, *layer, bytes.NewReader(blob)); err != nil {
		e.t.Fatal(err)
	}
	desc, raw, err := oras.FetchBytes(ctx, dst, tag(to), oras.DefaultFetchBytesOptions)
	if err != nil {
		e.t.Fatal(err)
	}
	var dm ocispec.Manifest
	if err := json.Unmarshal(raw, &dm); err != nil {
		e.t.Fatal(err)
	}
	dm.Layers = append(dm.Layers, *layer)
	raw, _ = json.Marshal(dm)
	if _, err := oras.TagBytes(ctx, dst, desc.MediaType, raw, tag(to)); err != nil {
		e.t.Fatal(err)
	}
}
