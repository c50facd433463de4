package registryext_test

import (
	"context"
	"sync"
	"testing"

	"ociwf.dev/policy/registryext"
)

// serveStoppable starts a registry configured by cfg on a random loopback
// port, for a test that stops it itself: stop shuts it down and returns
// Stop's error the first time, nil after; the test's end calls it too.
func serveStoppable(t *testing.T, cfg registryext.Config) (*registryext.Server, func() error) {
	t.Helper()
	registryext.RouteDistributionLogs(nil)
	cfg.Addr = "127.0.0.1:0"
	srv, err := registryext.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	var once sync.Once
	stop := func() (err error) {
		once.Do(func() { err = srv.Stop(context.Background()) })
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return srv, stop
}

// serveAt starts a registry storing under root; stop ends it, reporting
// an error stopping it as the test's.
func serveAt(t *testing.T, root string) (srv *registryext.Server, stop func()) {
	t.Helper()
	srv, stopErr := serveStoppable(t, registryext.Config{Root: root})
	return srv, func() {
		if err := stopErr(); err != nil {
			t.Errorf("registry: %v", err)
		}
	}
}
