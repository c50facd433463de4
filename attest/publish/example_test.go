package publish_test

import (
	"context"
	"fmt"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/ociwf/target"
)

// Publish a workflow in one call: push it by digest, sign it, attest its
// SLSA provenance and CycloneDX SBOM, and only then tag it. Running the
// same publication again rewrites nothing but the (unchanged) push and tag.
func ExamplePublish() {
	ctx := context.Background()
	// A loopback registry and a cosign key file (see the attest package's
	// example for how to make them).
	host, keyFile, stop, err := attesttest.Sandbox()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

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
	// A compiled, fully pinned sample workflow (see ociwf.Compile).
	b, err := attesttest.Build("build-test-release.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	// The key is decrypted while the artifact is pushed; Publish closes
	// the signer it loads.
	load := func(ctx context.Context) (*accessory.Signer, error) {
		return accessory.LoadSigner(ctx, accessory.SignerOptions{Key: keyFile, Pass: attesttest.Pass})
	}
	opts := publish.Options{
		Tag:        dst.Reference,
		Provenance: provenance.Options{BuilderID: "https://ci.example.com/builders/release"},
	}

	res, err := publish.Publish(ctx, dst, b, reg, publish.Load(ctx, load), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("published", res.Tag, "stored as", res.Mode)
	for _, s := range res.Steps {
		fmt.Println(" ", s.Name)
	}

	// A rerun finds the signature and attestations already stored.
	again, err := publish.Publish(ctx, dst, b, reg, publish.Load(ctx, load), opts)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same digest:", again.Descriptor.Digest == res.Descriptor.Digest)
	for _, s := range again.Steps {
		fmt.Println(" ", s.Name, "existing:", s.Existing)
	}
	// Output:
	// published 1.4.0 stored as tag
	//   push
	//   sign
	//   attest-provenance
	//   attest-sbom
	//   tag
	// same digest: true
	//   push existing: false
	//   sign existing: true
	//   attest-provenance existing: true
	//   attest-sbom existing: true
	//   tag existing: false
}
