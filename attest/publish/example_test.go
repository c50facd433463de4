package publish_test

import (
	"context"
	"fmt"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/keys"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/ociwf"
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
		return keys.LoadSigner(ctx, accessory.SignerOptions{Key: keyFile, Pass: attesttest.Pass})
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

// Publish a version that is already stored, by its digest: a draft pushed
// for review is published exactly as it was reviewed, without repacking.
// PublishDigest reads it back, checks it (digests, bindings, and that its
// plan recompiles from its source), signs and attests it, and tags it last.
func ExamplePublishDigest() {
	ctx := context.Background()
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
	dst, err := o.Open(ctx, host+"/workflows/build-test-release")
	if err != nil {
		fmt.Println(err)
		return
	}
	// The draft, pushed unsigned under a tag of its own.
	b, err := attesttest.Build("build-test-release.yaml")
	if err != nil {
		fmt.Println(err)
		return
	}
	draft, err := ociwf.Push(ctx, dst.Storage, b, "1.4.0-rc.1", ociwf.PushOptions{})
	if err != nil {
		fmt.Println(err)
		return
	}

	signer, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: keyFile, Pass: attesttest.Pass})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer signer.Close()
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{})
	res, err := publish.PublishDigest(ctx, dst, draft.Digest, reg, publish.Key(signer), publish.Options{
		Tag: "1.4.0",
		// A gate (approvals, say) may refuse here, before anything is signed.
		BeforeSign: func(ctx context.Context, desc ocispec.Descriptor, b *ociwf.Build) error {
			fmt.Println("about to sign", b.Plan.Workflow.Name, b.Plan.Workflow.Version)
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("same digest as the draft:", res.Descriptor.Digest == draft.Digest)
	for _, s := range res.Steps {
		fmt.Println(" ", s.Name)
	}
	// Output:
	// about to sign build-test-release 1.4.0
	// same digest as the draft: true
	//   check
	//   sign
	//   attest-provenance
	//   attest-sbom
	//   tag
}
