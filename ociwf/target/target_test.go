package target_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registryext/registrytest"
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
