package accessory_test

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"oras.land/oras-go/v2/registry/remote/auth"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/policy/registrytest"
)

// counting counts the requests it carries.
type counting struct {
	next http.RoundTripper
	n    atomic.Int64
}

func (c *counting) RoundTrip(req *http.Request) (*http.Response, error) {
	c.n.Add(1)
	return c.next.RoundTrip(req)
}

// A Registry made from a program's own transport and credential function
// sends every request through that transport and asks that function for
// the registry's credential.
func TestRegistryUsesTheClientItIsGiven(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	o := attesttest.Opener(t)
	_, subj := attesttest.Push(t, o, host+"/wf/client:1.4.0", "build-test-release.yaml")
	key, _ := attesttest.KeyPair(t, t.TempDir(), "k")
	s := attesttest.Signer(t, key)

	rt := &counting{next: http.DefaultTransport}
	var mu sync.Mutex
	var asked []string
	c := accessory.NewClient(accessory.ClientOptions{
		Transport: rt,
		Credential: func(_ context.Context, h string) (auth.Credential, error) {
			mu.Lock()
			defer mu.Unlock()
			asked = append(asked, h)
			return auth.EmptyCredential, nil
		},
		PlainHTTP: []string{host},
		UserAgent: "runtime/1",
	})
	reg := accessory.NewRegistry(c, accessory.RegistryOptions{})
	if _, err := reg.Sign(ctx, s, subj, accessory.SignOptions{}); err != nil {
		t.Fatal(err)
	}
	found, err := reg.Find(ctx, subj)
	if err != nil || len(found.Signatures) != 1 {
		t.Fatalf("find: %+v %v", found, err)
	}
	if rt.n.Load() == 0 {
		t.Fatal("no request went through the given transport")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) == 0 || strings.Join(asked, ",") != strings.Repeat(host+",", len(asked)-1)+host {
		t.Fatalf("credentials asked for %v, want %s only", asked, host)
	}
}
