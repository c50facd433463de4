package target_test

import (
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/distribution/distribution/v3/configuration"
	"golang.org/x/crypto/bcrypt"

	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/errcode"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// instrumented is an HTTP transport as tracing libraries install one in
// place of http.DefaultTransport: not an *http.Transport.
type instrumented struct {
	next http.RoundTripper
	n    *atomic.Int64
}

func (i instrumented) RoundTrip(req *http.Request) (*http.Response, error) {
	i.n.Add(1)
	return i.next.RoundTrip(req)
}

// Applications that replace http.DefaultTransport (instrumentation) get an
// Opener that talks through it, or, where that cannot be honoured, an
// error; never a panic.
func TestNewUnderAnInstrumentedDefaultTransport(t *testing.T) {
	host := registrytest.New(t)
	var n atomic.Int64
	def := http.DefaultTransport
	http.DefaultTransport = instrumented{next: def, n: &n}
	t.Cleanup(func() { http.DefaultTransport = def })

	cases := []struct {
		name    string
		opts    target.Options
		wantErr error
	}{
		{name: "default", opts: target.Options{PlainHTTP: true}},
		{name: "given transport", opts: target.Options{PlainHTTP: true, Transport: instrumented{next: def, n: &n}}},
		{name: "insecure TLS needs an *http.Transport", opts: target.Options{Insecure: true}, wantErr: errdef.ErrInvalid},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			o, err := target.New(tc.opts)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("got %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			repo, err := o.Repository(registry.Reference{Registry: host, Repository: "wf/x"})
			if err != nil {
				t.Fatal(err)
			}
			before := n.Load()
			// The repository does not exist: only the requests count.
			_ = repo.Tags(context.Background(), "", func([]string) error { return nil })
			if n.Load() == before {
				t.Fatal("no request went through the instrumented transport")
			}
		})
	}
}

// authRegistry starts a registry that wants user "ci" with password pw.
func authRegistry(t *testing.T, pw string) string {
	t.Helper()
	dir := t.TempDir()
	hash, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte("ci:"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	conf, err := configuration.Parse(strings.NewReader("version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: " + filepath.Join(dir, "data") +
		"\nauth:\n  htpasswd:\n    realm: test\n    path: " + htpasswd + "\nhttp:\n  secret: test-secret\n"))
	if err != nil {
		t.Fatal(err)
	}
	return registrytest.Start(t, registryext.Config{Distribution: conf}).Addr()
}

// Plain HTTP is chosen per registry: a listed host is reached over HTTP,
// any other over HTTPS; a program's own credential function gives the
// credentials.
func TestPlainHTTPPerRegistryAndOwnCredentials(t *testing.T) {
	ctx := context.Background()
	plain, other := authRegistry(t, "s3cret"), registrytest.New(t)
	var asked atomic.Int64
	o, err := target.New(target.Options{
		PlainHTTPHosts: []string{plain},
		Credential: func(_ context.Context, host string) (auth.Credential, error) {
			asked.Add(1)
			if host != plain {
				return auth.EmptyCredential, nil
			}
			return auth.Credential{Username: "ci", Password: "s3cret"}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !o.PlainHTTP(plain) || o.PlainHTTP(other) {
		t.Fatalf("PlainHTTP(%s) = %v, PlainHTTP(%s) = %v; want true, false", plain, o.PlainHTTP(plain), other, o.PlainHTTP(other))
	}
	list := func(host string) error {
		repo, err := o.Repository(registry.Reference{Registry: host, Repository: "w/build"})
		if err != nil {
			t.Fatal(err)
		}
		return repo.Tags(ctx, "", func([]string) error { return nil })
	}
	// The repository does not exist: 404 once authenticated over HTTP.
	var resp *errcode.ErrorResponse
	if err := list(plain); !errors.As(err, &resp) || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("%s over plain HTTP with the program's credentials: %v; want 404", plain, err)
	}
	if asked.Load() == 0 {
		t.Fatal("the program's credential function was never asked")
	}
	// An HTTPS client gets an HTTP answer it cannot read.
	if err := list(other); err == nil || errors.As(err, &resp) {
		t.Fatalf("%s, not listed: %v; want a TLS failure", other, err)
	}
}
