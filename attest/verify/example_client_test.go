package verify_test

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/http"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

// runtimeOpener is how a runtime reaches registries with its own HTTP
// client and credential function: oras-go's auth.Client for workflows, the
// same transport and credentials (an accessory.Client) for signatures, and
// plain HTTP for its one loopback registry only.
type runtimeOpener struct {
	accessory.Client
	client    *auth.Client
	plainHTTP string
}

func (r runtimeOpener) Open(_ context.Context, ref string) (*target.Target, error) {
	parsed, err := registry.ParseReference(ref)
	if err != nil {
		return nil, err
	}
	repo := &remote.Repository{Client: r.client, Reference: parsed, PlainHTTP: parsed.Registry == r.plainHTTP}
	name := parsed.Registry + "/" + parsed.Repository
	return &target.Target{Storage: repo, Ref: target.Ref{Name: name, Reference: parsed.Reference}}, nil
}

// A runtime hands the verifier its own HTTP client (here with its CA
// bundle) and credential function instead of a *target.Opener.
func ExampleNew_ownClient() {
	ctx := context.Background()
	_, host, pub, ref, stop, err := sandboxRelease()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer stop()

	// The runtime's transport trusts its own CA bundle (the system's here).
	roots, err := x509.SystemCertPool()
	if err != nil {
		fmt.Println(err)
		return
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig.RootCAs = roots
	// Its credential function; credentials.Credential(store) adapts an
	// oras-go credentials.Store (a Docker config, a credential helper).
	cred := func(_ context.Context, host string) (auth.Credential, error) {
		return auth.EmptyCredential, nil // anonymous, for the sandbox
	}
	o := runtimeOpener{
		Client:    accessory.NewClient(accessory.ClientOptions{Transport: tr, Credential: cred, PlainHTTP: []string{host}}),
		client:    &auth.Client{Client: &http.Client{Transport: tr}, Credential: cred, Cache: auth.NewCache()},
		plainHTTP: host,
	}
	p, report, err := verify.Fetch(ctx, ref, trust.KeyPolicy(pub, host+"/workflows/build-test-release", trust.KeyPolicyOptions{}), o, verify.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("verified:", report.Verified, "plan:", p.Workflow.Name, p.Workflow.Version)
	// Output:
	// verified: true plan: build-test-release 1.4.0
}
