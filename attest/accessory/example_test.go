package accessory_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/keys"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registryext"
)

// examplePass supplies the password that encrypts the example's private key.
func examplePass(bool) ([]byte, error) { return []byte("example password"), nil }

// Sign a published workflow with a cosign key pair, attest its SBOM, and
// verify both with the public key, as `cosign verify` and
// `cosign verify-attestation --type cyclonedx` would.
func ExampleRegistry_Sign() {
	ctx := context.Background()
	dir, _ := os.MkdirTemp("", "attest-example")
	defer os.RemoveAll(dir)

	// The embedded registry on a free loopback port.
	registryext.RouteDistributionLogs(nil)
	srv, err := registryext.New(ctx, registryext.Config{Addr: "127.0.0.1:0", Root: filepath.Join(dir, "registry")})
	if err != nil {
		fmt.Println(err)
		return
	}
	srv.Start()
	defer srv.Stop(ctx)
	host := srv.Addr()

	// A key pair in the format of `cosign generate-key-pair`.
	kp, err := accessory.GenerateKeyPair(examplePass)
	if err != nil {
		fmt.Println(err)
		return
	}
	keyFile, pubFile, err := accessory.WriteKeyFiles(filepath.Join(dir, "cosign"), kp, false)
	if err != nil {
		fmt.Println(err)
		return
	}
	signer, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: keyFile, Pass: examplePass})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer signer.Close()

	// Publish the workflow; signatures name the digest Push returns.
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	dst, err := o.Open(ctx, host+"/workflows/build-test-release:1.4.0")
	if err != nil {
		fmt.Println(err)
		return
	}
	src, err := os.ReadFile("../../testdata/workflows/build-test-release.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	b, err := ociwf.Compile(ctx, src, ociwf.CompileOptions{File: "build-test-release.yaml"})
	if err != nil {
		fmt.Println(err)
		return
	}
	desc, err := ociwf.Push(ctx, dst.Storage, b, dst.Reference, ociwf.PushOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	subj := accessory.Subject{Repository: dst.Name, Digest: desc.Digest, Tag: dst.Reference}

	// Sign it and attest its CycloneDX SBOM, stored under cosign's tag scheme.
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	if _, err := reg.Sign(ctx, signer, subj, accessory.SignOptions{}); err != nil {
		fmt.Println(err)
		return
	}
	if _, err := reg.Attest(ctx, signer, subj, accessory.AttestOptions{Type: accessory.TypeCycloneDX, Predicate: b.SBOM}); err != nil {
		fmt.Println(err)
		return
	}

	// Signing again with the same key writes nothing.
	again, err := reg.Sign(ctx, signer, subj, accessory.SignOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("signed again, existing:", again.Existing)

	// Verify with the public key alone.
	verifier, err := accessory.LoadVerifier(ctx, pubFile)
	if err != nil {
		fmt.Println(err)
		return
	}
	// Read what is stored and check it with the public key; package
	// attest/verify applies a trust policy on top of these primitives.
	found, err := reg.Find(ctx, subj)
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, s := range found.Signatures {
		if err := s.Verify(ctx, verifier); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("signature stored as", s.Mode, "records tag", s.Payload.Optional[accessory.AnnotationTag])
	}
	for _, a := range found.Attestations {
		st, err := a.Verify(ctx, verifier)
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("attestation:", st.PredicateType, "covers the digest:", accessory.Covers(st, subj.Digest))
	}
	// Output:
	// signed again, existing: true
	// signature stored as tag records tag 1.4.0
	// attestation: https://cyclonedx.org/bom covers the digest: true
}
