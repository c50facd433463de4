package verify_test

import (
	"context"
	"crypto"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/in-toto/in-toto-golang/in_toto"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"
	orasremote "oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/policy/predicate"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// BenchmarkFetchPeer times verify.Fetch (all eight checks) against the
// same artifact verified with cosign's library as cosign verify and
// cosign verify-attestation do (VerifyImageSignatures, then
// VerifyImageAttestations twice, keeping the SLSA provenance and then the
// CycloneDX SBOM by predicate type) followed by an oras-go pull of the
// manifest and every blob with their digests checked (oras.Copy into
// memory). One version, signed and attested under cosign's tags, on one
// in-process loopback registry. Both sides start cold on every iteration:
// the key read from its file, a new HTTP transport (no kept connections),
// a new verifier or new cosign and oras clients. The cosign side checks
// less: not the tag's resolution to one digest, the manifest's form, the
// SBOM against its layer, the recompile, nor the lifecycle.
//
// Sub-benchmark both runs one of each per iteration, alternating which
// goes first, and reports ociwf/cosign, the ratio of their summed times.
//
//	go test ./attest/verify -run '^$' -bench FetchPeer -count 6
func BenchmarkFetchPeer(b *testing.B) {
	dir := b.TempDir()
	host := registrytest.NewAt(b, filepath.Join(dir, "registry"))
	key, pub := attesttest.KeyPair(b, dir, "bench")
	o := attesttest.Opener(b)
	sb := attesttest.Sample(b, benchSample)
	ref := host + "/wf/release:" + sb.Plan.Workflow.Version
	dst, err := o.Open(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := publish.Publish(context.Background(), dst, sb, accessory.NewRegistry(o, accessory.RegistryOptions{Mode: accessory.TagScheme}), publish.Key(attesttest.Signer(b, key)), publish.Options{
		Tag: dst.Reference,
	}); err != nil {
		b.Fatal(err)
	}
	pol := trust.KeyPolicy(pub, dst.Name, trust.KeyPolicyOptions{})
	ours := func(b *testing.B) int64 {
		_, rep, err := verify.Fetch(context.Background(), ref, pol, attesttest.Opener(b), verify.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if !rep.Verified {
			b.Fatal("not verified")
		}
		return rep.Requests
	}
	theirs := func(b *testing.B) int64 {
		n, err := peerVerify(context.Background(), ref, pub)
		if err != nil {
			b.Fatal(err)
		}
		return n
	}
	// Each side once, untimed: both pass, and the registry is warm.
	ours(b)
	theirs(b)
	for _, side := range []struct {
		name string
		run  func(*testing.B) int64
	}{{"ociwf", ours}, {"cosign", theirs}} {
		b.Run(side.name, func(b *testing.B) {
			var requests int64
			for b.Loop() {
				requests += side.run(b)
			}
			b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
		})
	}
	b.Run("both", func(b *testing.B) {
		var tOurs, tTheirs time.Duration
		i := 0
		for b.Loop() {
			timed := func(f func(*testing.B) int64, sum *time.Duration) {
				t0 := time.Now()
				f(b)
				*sum += time.Since(t0)
			}
			if i%2 == 0 {
				timed(ours, &tOurs)
				timed(theirs, &tTheirs)
			} else {
				timed(theirs, &tTheirs)
				timed(ours, &tOurs)
			}
			i++
		}
		b.ReportMetric(float64(tOurs)/float64(tTheirs), "ociwf/cosign")
		b.ReportMetric(float64(tOurs.Nanoseconds())/float64(b.N), "ociwf-ns/op")
		b.ReportMetric(float64(tTheirs.Nanoseconds())/float64(b.N), "cosign-ns/op")
	})
}

// peerVerify verifies ref (by tag, on a plain-HTTP loopback registry)
// with cosign's library and oras-go as the stock pipeline does, from
// cold, and returns the HTTP requests it sent.
func peerVerify(ctx context.Context, ref, pubFile string) (int64, error) {
	var requests atomic.Int64
	base := remote.DefaultTransport.(*http.Transport).Clone()
	defer base.CloseIdleConnections()
	tr := countingTransport{n: &requests, next: base}

	pemBytes, err := os.ReadFile(pubFile)
	if err != nil {
		return 0, err
	}
	pk, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return 0, err
	}
	sv, err := signature.LoadVerifier(pk, crypto.SHA256)
	if err != nil {
		return 0, err
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		return 0, err
	}
	co := &cosign.CheckOpts{
		RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(remote.WithTransport(tr), remote.WithContext(ctx))},
		SigVerifier:        sv,
		IgnoreTlog:         true,
		ClaimVerifier:      cosign.SimpleClaimVerifier,
	}
	// cosign verify.
	sigs, _, err := cosign.VerifyImageSignatures(ctx, r, co)
	if err != nil {
		return 0, fmt.Errorf("cosign verify: %w", err)
	}
	if len(sigs) == 0 {
		return 0, fmt.Errorf("cosign verify: no signatures")
	}
	// cosign verify-attestation --type slsaprovenance1, then --type
	// cyclonedx: each a separate verification, as the pipeline runs them.
	for _, typ := range []string{predicate.SLSAProvenance, predicate.CycloneDX} {
		co := &cosign.CheckOpts{
			RegistryClientOpts: []ociremote.Option{ociremote.WithRemoteOptions(remote.WithTransport(tr), remote.WithContext(ctx))},
			SigVerifier:        sv,
			IgnoreTlog:         true,
			ClaimVerifier:      cosign.IntotoSubjectClaimVerifier,
		}
		atts, _, err := cosign.VerifyImageAttestations(ctx, r, co)
		if err != nil {
			return 0, fmt.Errorf("cosign verify-attestation --type %s: %w", typ, err)
		}
		uri, err := predicate.URI(typ)
		if err != nil {
			return 0, err
		}
		matched := 0
		for _, a := range atts {
			ok, err := hasPredicateType(a, uri)
			if err != nil {
				return 0, fmt.Errorf("cosign verify-attestation --type %s: %w", typ, err)
			}
			if ok {
				matched++
			}
		}
		if matched == 0 {
			return 0, fmt.Errorf("cosign verify-attestation --type %s: none of %d attestations has predicate type %s", typ, len(atts), uri)
		}
	}
	// oras pull: the manifest and every blob, digests checked.
	repo, err := orasremote.NewRepository(r.Context().Name())
	if err != nil {
		return 0, err
	}
	repo.PlainHTTP = true
	repo.Client = &auth.Client{Client: &http.Client{Transport: tr}, Cache: auth.NewCache()}
	if _, err := oras.Copy(ctx, repo, r.Identifier(), memory.New(), r.Identifier(), oras.DefaultCopyOptions); err != nil {
		return 0, fmt.Errorf("oras pull: %w", err)
	}
	return requests.Load(), nil
}

// hasPredicateType decodes a verified attestation's DSSE payload as
// cosign's policy.AttestationToPayloadJSON does and reports whether its
// statement has predicate type uri.
func hasPredicateType(a interface{ Payload() ([]byte, error) }, uri string) (bool, error) {
	p, err := a.Payload()
	if err != nil {
		return false, err
	}
	var env struct {
		Payload string `json:"payload"`
	}
	if err := json.Unmarshal(p, &env); err != nil {
		return false, fmt.Errorf("unmarshaling payload data: %w", err)
	}
	raw, err := base64.StdEncoding.DecodeString(env.Payload)
	if err != nil {
		return false, fmt.Errorf("decoding payload: %w", err)
	}
	var st in_toto.Statement
	if err := json.Unmarshal(raw, &st); err != nil {
		return false, fmt.Errorf("unmarshal in-toto statement: %w", err)
	}
	return st.PredicateType == uri, nil
}

// countingTransport counts the requests sent through it.
type countingTransport struct {
	n    *atomic.Int64
	next http.RoundTripper
}

func (t countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	t.n.Add(1)
	return t.next.RoundTrip(req)
}
