// Package registrytest starts an ociwf registry on a random loopback port for
// the lifetime of a test, the way net/http/httptest starts a server. It
// sits beside registryext, not beneath it, so that no package imports the
// package above it.
package registrytest

import (
	"context"
	"testing"

	"ociwf.dev/policy/registryext"
)

// New starts a registry storing under a temporary directory, stops it when
// the test ends, and returns its host:port.
func New(t testing.TB) string {
	t.Helper()
	return NewAt(t, t.TempDir())
}

// NewAt is New with storage under root, so a test can reach into the
// registry's storage (to tamper with a blob, say).
func NewAt(t testing.TB, root string) string {
	t.Helper()
	return Start(t, registryext.Config{Root: root}).Addr()
}

// Start starts a registry configured by cfg on a random loopback port (Addr
// is ignored; a configuration with http.net unix keeps its socket path) and
// stops it when the test ends.
func Start(t testing.TB, cfg registryext.Config) *registryext.Server {
	t.Helper()
	registryext.RouteDistributionLogs(nil)
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Addr = "127.0.0.1:0"
	if d := cfg.Distribution; d != nil && d.HTTP.Net == "unix" {
		cfg.Addr = ""
	}
	srv, err := registryext.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatalf("start registry: %v", err)
	}
	srv.Start()
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("registry: %v", err)
		}
		cancel()
	})
	return srv
}
