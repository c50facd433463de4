package publish_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// refusing puts a reverse proxy in front of a registry that answers 403 to
// manifest PUTs whose reference ends with the current suffix ("" refuses
// nothing).
type refusing struct {
	suffix  atomic.Value
	refused atomic.Int32
}

func proxy(t *testing.T, host string) (string, *refusing) {
	t.Helper()
	u, _ := url.Parse("http://" + host)
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0)
	f := &refusing{}
	f.suffix.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s := f.suffix.Load().(string); s != "" && r.Method == http.MethodPut && strings.Contains(r.URL.Path, "/manifests/") && strings.HasSuffix(r.URL.Path, s) {
			f.refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusForbidden)
			_, _ = w.Write([]byte(`{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`))
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://"), f
}

type fixture struct {
	o      *target.Opener
	signer *accessory.Signer
	pub    string
}

func newFixture(t *testing.T) fixture {
	key, pub := attesttest.KeyPair(t, t.TempDir(), "k")
	return fixture{o: attesttest.Opener(t), signer: attesttest.Signer(t, key), pub: pub}
}

func (f fixture) publish(t *testing.T, ref, sample string, mode accessory.Mode) (*publish.Result, error) {
	t.Helper()
	return f.publishWith(t, ref, sample, accessory.RegistryOptions{Mode: mode})
}

// publishWith publishes sample to ref through a Registry made with opts.
func (f fixture) publishWith(t *testing.T, ref, sample string, opts accessory.RegistryOptions) (*publish.Result, error) {
	t.Helper()
	ctx := context.Background()
	dst, err := f.o.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	clock := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	return publish.Publish(ctx, dst, attesttest.Sample(t, sample), accessory.NewRegistry(f.o, opts), publish.Key(f.signer), publish.Options{
		Tag:        dst.Reference,
		Provenance: provenance.Options{BuilderID: "https://ci.example/builders/1", SourceURI: "git+https://example.com/acme/wf", SourceRevision: strings.Repeat("ab", 20)},
		Now:        func() time.Time { clock = clock.Add(time.Second); return clock },
	})
}

// stored is what verify found for a published subject: the entries stored
// and the verifier's report.
type stored struct {
	found *accessory.Found
	rep   *verify.Report
}

// verify checks subj with the verifier under a one-key policy requiring the
// signed tag, and reads what is stored for it.
func (f fixture) verify(t *testing.T, subj accessory.Subject) (*stored, error) {
	t.Helper()
	ctx := context.Background()
	v, err := verify.New(trust.KeyPolicy(f.pub, subj.Repository, trust.KeyPolicyOptions{}), f.o, verify.Options{RequireSignedTag: true})
	if err != nil {
		t.Fatal(err)
	}
	_, rep, err := v.Verify(ctx, subj.Repository+":"+subj.Tag)
	if err != nil {
		return nil, err
	}
	found, err := accessory.NewRegistry(f.o, accessory.RegistryOptions{}).Find(ctx, subj)
	if err != nil {
		return nil, err
	}
	return &stored{found: found, rep: rep}, nil
}

func subjectOf(res *publish.Result, repo string) accessory.Subject {
	return accessory.Subject{Repository: repo, Digest: res.Descriptor.Digest, Tag: res.Tag}
}

func TestPublishThenVerify(t *testing.T) {
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t)
			repo := registrytest.New(t) + "/wf/release"
			res, err := f.publish(t, repo+":1.4.0", "build-test-release.yaml", mode)
			if err != nil {
				t.Fatal(err)
			}
			if res.Reference != repo+"@"+res.Descriptor.Digest.String() || res.Mode != mode {
				t.Fatalf("result %+v", res)
			}
			var names []string
			for _, s := range res.Steps {
				names = append(names, s.Name)
			}
			if got := strings.Join(names, ","); got != "push,sign,attest-provenance,attest-sbom,tag" {
				t.Fatalf("steps %s", got)
			}
			v, err := f.verify(t, subjectOf(res, repo))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.found.Signatures) != 1 || len(v.found.Attestations) != 2 || len(v.rep.Attestations) != 2 {
				t.Fatalf("found %d signatures and %d attestations, %d accepted", len(v.found.Signatures), len(v.found.Attestations), len(v.rep.Attestations))
			}
			schema := attesttest.SLSASchema(t)
			for _, a := range v.rep.Attestations {
				if a.Mode != mode {
					t.Fatalf("attestation stored as %s", a.Mode)
				}
				if a.PredicateType != provenance.PredicateType {
					continue
				}
				// What stock cosign hands a verifier is valid SLSA v1.
				var st struct{ Predicate json.RawMessage }
				if err := json.Unmarshal(a.Statement, &st); err != nil {
					t.Fatal(err)
				}
				doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(st.Predicate))
				if err != nil {
					t.Fatal(err)
				}
				if err := schema.Validate(doc); err != nil {
					t.Fatalf("stored provenance: %v", err)
				}
				if !bytes.Contains(st.Predicate, []byte(`"builder":{"id":"https://ci.example/builders/1"`)) {
					t.Fatalf("stored provenance lost the builder: %s", st.Predicate)
				}
			}
		})
	}
}

// On a registry without the referrers API every bundle referrer is listed
// in one fallback index tag, so no bundle may be lost to concurrent
// updates of it.
func TestPublishBundlesWithoutReferrersAPI(t *testing.T) {
	for _, format := range []accessory.Format{accessory.FormatBundle, accessory.FormatBoth} {
		t.Run(format.String(), func(t *testing.T) {
			f := newFixture(t)
			host := registrytest.StartPlain(t, t.TempDir())
			for i := range 3 {
				repo := fmt.Sprintf("%s/wf/release%d", host, i)
				res, err := f.publishWith(t, repo+":1.4.0", "build-test-release.yaml", accessory.RegistryOptions{Format: format})
				if err != nil {
					t.Fatal(err)
				}
				found, err := accessory.NewRegistry(f.o, accessory.RegistryOptions{}).Find(context.Background(), subjectOf(res, repo))
				if err != nil {
					t.Fatal(err)
				}
				if len(found.Bundles) != 3 {
					t.Fatalf("%s: found %d bundles, want 3 (the signature and two attestations)", repo, len(found.Bundles))
				}
			}
		})
	}
}

func TestPublishIsIdempotent(t *testing.T) {
	for _, mode := range []accessory.Mode{accessory.TagScheme, accessory.Referrers} {
		t.Run(mode.String(), func(t *testing.T) {
			f := newFixture(t)
			repo := registrytest.New(t) + "/wf/again"
			first, err := f.publish(t, repo+":1.4.0", "build-test-release.yaml", mode)
			if err != nil {
				t.Fatal(err)
			}
			second, err := f.publish(t, repo+":1.4.0", "build-test-release.yaml", mode)
			if err != nil {
				t.Fatal(err)
			}
			if second.Descriptor.Digest != first.Descriptor.Digest {
				t.Fatalf("digest changed: %s then %s", first.Descriptor.Digest, second.Descriptor.Digest)
			}
			for _, s := range second.Steps {
				if (s.Name == "sign" || strings.HasPrefix(s.Name, "attest")) && !s.Existing {
					t.Fatalf("rerun wrote %s again", s.Name)
				}
			}
			v, err := f.verify(t, subjectOf(second, repo))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.found.Signatures) != 1 || len(v.found.Attestations) != 2 {
				t.Fatalf("after a rerun: %d signatures and %d attestations, want 1 and 2", len(v.found.Signatures), len(v.found.Attestations))
			}
		})
	}
}

// A registry that refuses the signature (or the attestations) fails the
// publish without tagging; the next clean run completes it with exactly one
// signature and two attestations.
func TestFailedStepLeavesNoTag(t *testing.T) {
	f := newFixture(t)
	host, faults := proxy(t, registrytest.New(t))
	for _, c := range []struct{ suffix, want string }{
		{".sig", "store signature"},
		{".att", "store attestation"},
		{"1.4.0", "tag"},
	} {
		t.Run(c.suffix, func(t *testing.T) {
			repo := host + "/wf/faulty" + strings.ReplaceAll(c.suffix, ".", "-")
			tagged := func() bool {
				dst, err := f.o.Open(context.Background(), repo)
				if err != nil {
					t.Fatal(err)
				}
				_, err = dst.Storage.Resolve(context.Background(), "1.4.0")
				if err != nil && !errors.Is(err, orasdef.ErrNotFound) {
					t.Fatal(err)
				}
				return err == nil
			}
			faults.suffix.Store(c.suffix)
			before := faults.refused.Load()
			_, err := f.publish(t, repo+":1.4.0", "build-test-release.yaml", accessory.TagScheme)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "denied") {
				t.Fatalf("refused %s: got %v, want %q", c.suffix, err, c.want)
			}
			if faults.refused.Load() == before {
				t.Fatal("the proxy refused nothing")
			}
			if tagged() {
				t.Fatalf("tag applied although the %s push was refused", c.suffix)
			}
			faults.suffix.Store("")
			res, err := f.publish(t, repo+":1.4.0", "build-test-release.yaml", accessory.TagScheme)
			if err != nil {
				t.Fatal(err)
			}
			if !tagged() {
				t.Fatal("not tagged after a clean run")
			}
			v, err := f.verify(t, subjectOf(res, repo))
			if err != nil {
				t.Fatal(err)
			}
			if len(v.found.Signatures) != 1 || len(v.found.Attestations) != 2 {
				t.Fatalf("%d signatures and %d attestations, want 1 and 2", len(v.found.Signatures), len(v.found.Attestations))
			}
		})
	}
}

func TestPublishRefusesATakenTag(t *testing.T) {
	f := newFixture(t)
	repo := registrytest.New(t) + "/wf/taken"
	first, err := f.publish(t, repo+":1.0.0", "fan-out-fan-in.yaml", accessory.TagScheme)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.publish(t, repo+":1.0.0", "build-test-release.yaml", accessory.TagScheme)
	if !errors.Is(err, errdef.ErrImmutable) {
		t.Fatalf("got %v, want ErrImmutable", err)
	}
	dst, _ := f.o.Open(context.Background(), repo+":1.0.0")
	desc, err := dst.Storage.Resolve(context.Background(), "1.0.0")
	if err != nil || desc.Digest != first.Descriptor.Digest {
		t.Fatalf("tag now names %s (%v), want %s", desc.Digest, err, first.Descriptor.Digest)
	}
	// Nothing was signed for the refused content: the only tags are 1.0.0
	// and the .sig and .att of its digest.
	tags, err := registry.Tags(context.Background(), dst.Storage.(registry.TagLister))
	if err != nil {
		t.Fatal(err)
	}
	if len(tags) != 3 {
		t.Fatalf("tags %v", tags)
	}
}
