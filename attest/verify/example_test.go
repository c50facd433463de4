package verify_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"oras.land/oras-go/v2"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	signkeys "ociwf.dev/attest/keys"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

// sandboxRelease publishes the sample workflow to a loopback registry the
// way `ociwf publish` does, and returns an Opener for the registry, its
// host, the public key file and the tag reference.
func sandboxRelease() (o *target.Opener, host, pub, ref string, stop func(), err error) {
	ctx := context.Background()
	host, keyFile, stop, err := attesttest.Sandbox()
	if err != nil {
		return nil, "", "", "", nil, err
	}
	o, err = target.New(target.Options{PlainHTTP: true})
	if err == nil {
		var dst *target.Target
		ref = host + "/workflows/build-test-release:1.4.0"
		if dst, err = o.Open(ctx, ref); err == nil {
			b, _ := attesttest.Build("build-test-release.yaml")
			signer := publish.Load(ctx, func(ctx context.Context) (*accessory.Signer, error) {
				return signkeys.LoadSigner(ctx, accessory.SignerOptions{Key: keyFile, Pass: attesttest.Pass})
			})
			_, err = publish.Publish(ctx, dst, b, accessory.NewRegistry(o, accessory.RegistryOptions{}), signer, publish.Options{
				Tag:        dst.Reference,
				Provenance: provenance.Options{BuilderID: "https://ci.example.com/builders/release", SourceURI: "git+https://example.com/acme/workflows"},
			})
		}
	}
	if err != nil {
		stop()
		return nil, "", "", "", nil, err
	}
	return o, host, strings.TrimSuffix(keyFile, ".key") + ".pub", ref, stop, nil
}

// A workflow engine fetches the plan it is about to run. Fetch resolves the
// tag once, re-hashes every blob, checks the signatures and attestations
// against the trust policy and recompiles the plan from its DSL; the plan
// comes back only when all of that held.
func ExampleFetch() {
	ctx := context.Background()
	o, host, pub, ref, stop, err := sandboxRelease()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// Usually trust.Load("trust-policy.yaml"); keys are relative to it.
	policy, err := trust.Parse("trust-policy.yaml", []byte(`
version: ociwf.dev/trust/v1
trustPolicies:
  - name: workflows
    registryScopes: ["`+host+`/workflows/**"]
    signers:
      - name: release
        key: `+pub+`
    require:
      attestations: [slsaprovenance1, cyclonedx]
      builders: ["https://ci.example.com/builders/*"]
      sources: ["git+https://example.com/acme/**"]
`))
	if err != nil {
		fmt.Println(err)
		return
	}
	p, report, err := verify.Fetch(ctx, ref, policy, o, verify.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("run %s %s: %d steps in %d stages\n", p.Workflow.Name, p.Workflow.Version, len(p.Steps), len(p.Stages))
	fmt.Println("trust policy:", report.Scope, "signed by:", report.Signers)
	for _, c := range report.Checks {
		fmt.Printf("  %-15s %s\n", c.Name, c.Status)
	}
	// Output:
	// run build-test-release 1.4.0: 6 steps in 3 stages
	// trust policy: workflows signed by: [release]
	//   reference       pass
	//   manifest        pass
	//   blobs           pass
	//   signatures      pass
	//   attestations    pass
	//   sbom            pass
	//   reproducibility pass
	//   lifecycle       pass
}

// A verification that fails says which check failed, what it expected and
// what it found; the error matches errdef.ErrVerification.
func ExampleVerifier_Verify() {
	ctx := context.Background()
	o, host, pub, ref, stop, err := sandboxRelease()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	// The key is trusted for another repository only: the signature names
	// workflows/build-test-release, so it cannot vouch for a copy elsewhere.
	copied := host + "/mirror/build-test-release:1.4.0"
	if err := copyWithSignatures(ctx, o, ref, copied); err != nil {
		fmt.Println(err)
		return
	}
	v, err := verify.New(trust.KeyPolicy(pub, host+"/mirror/build-test-release", trust.KeyPolicyOptions{}), o, verify.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	wf, _, err := v.Verify(ctx, copied)
	var f *verify.Failure
	if errors.As(err, &f) {
		fmt.Println("workflow returned:", wf != nil)
		fmt.Println("failed check:", f.Check)
		fmt.Println("expected:", strings.ReplaceAll(f.Expected, host, "HOST"))
		fmt.Println("actual:", strings.ReplaceAll(f.Actual, host, "HOST"))
	}

	// A mirror is verified by naming the repository the signatures were
	// made for (ociwf verify --signed-identity).
	v, err = verify.New(trust.KeyPolicy(pub, host+"/mirror/build-test-release", trust.KeyPolicyOptions{SignedIdentity: host + "/workflows/build-test-release"}), o, verify.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, report, err := v.Verify(ctx, copied)
	fmt.Println("with the signed identity:", err == nil && report.Verified)
	// Output:
	// workflow returned: false
	// failed check: signatures
	// expected: docker-reference HOST/mirror/build-test-release
	// actual: docker-reference HOST/workflows/build-test-release
	// with the signed identity: true
}

// copyWithSignatures copies a tag and its cosign signature and attestation
// tags to another repository, as a mirror does.
func copyWithSignatures(ctx context.Context, o *target.Opener, src, dst string) error {
	s, err := o.Open(ctx, src)
	if err != nil {
		return err
	}
	d, err := o.Open(ctx, dst)
	if err != nil {
		return err
	}
	desc, err := oras.Copy(ctx, s.Storage, s.Reference, d.Storage, d.Reference, oras.DefaultCopyOptions)
	if err != nil {
		return err
	}
	for _, suffix := range []string{".sig", ".att"} {
		tag := desc.Digest.Algorithm().String() + "-" + desc.Digest.Encoded() + suffix
		if _, err := oras.Copy(ctx, s.Storage, tag, d.Storage, tag, oras.DefaultCopyOptions); err != nil {
			return err
		}
	}
	return nil
}

// A runtime that verifies before every run keeps its verifications in a
// Cache: within the TTL, a reference by digest is served without asking
// the registry anything; after it, signatures, attestations and the
// lifecycle state are checked again on the content kept.
func ExampleNewCache() {
	ctx := context.Background()
	o, _, pub, ref, stop, err := sandboxRelease()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()
	repo, _, _ := strings.Cut(ref, ":1.4.0")
	cache := verify.NewCache(verify.CacheOptions{TTL: time.Minute})
	v, err := verify.New(trust.KeyPolicy(pub, repo, trust.KeyPolicyOptions{}), o, verify.Options{Cache: cache})
	if err != nil {
		fmt.Println(err)
		return
	}
	_, report, err := v.Fetch(ctx, ref)
	if err != nil {
		fmt.Println(err)
		return
	}
	pinned := repo + "@" + report.Digest.String()
	for _, r := range []string{ref, pinned} {
		_, report, err := v.Fetch(ctx, r)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Printf("cached=%s verified=%v requests=%d\n", report.Cached, report.Verified, report.Requests)
	}
	// Output:
	// cached=hit verified=true requests=1
	// cached=hit verified=true requests=0
}
