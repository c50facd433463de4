package registrytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
)

// StartPlain serves stock Distribution, without ociwf's middleware and
// front, with filesystem storage under root, on a random loopback port,
// until the test ends; it returns its host:port. It is configured as
// ociwf's server configures Distribution for a storage root and served the
// same way (net/http, a ServeMux in front), so it stands for any registry
// without ociwf's rules: one that stores what a client with push access
// sends, and has no referrers API.
func StartPlain(t testing.TB, root string) string {
	t.Helper()
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		t.Fatal(err)
	}
	storage := configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": root}}
	storage["delete"] = configuration.Parameters{"enabled": true}
	storage["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}
	conf := &configuration.Configuration{Version: "0.1", Storage: storage}
	conf.HTTP.Secret = hex.EncodeToString(secret)
	conf.Log.Level = "warn"
	conf.Validation.Manifests.URLs.Allow = []string{"^https?://"}
	ctx, cancel := context.WithCancel(context.Background())
	app := handlers.NewApp(ctx, conf)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", app)
	// Connections that never sent a request (clients dial ahead) are
	// closed at shutdown, as the ociwf server does: net/http would wait
	// five seconds for each to speak.
	var mu sync.Mutex
	fresh := map[net.Conn]bool{}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 30 * time.Second, ConnState: func(c net.Conn, s http.ConnState) {
		mu.Lock()
		defer mu.Unlock()
		if s == http.StateNew {
			fresh[c] = true
		} else {
			delete(fresh, c)
		}
	}}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		mu.Lock()
		for c := range fresh {
			c.Close()
		}
		mu.Unlock()
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Errorf("plain distribution: %v", err)
		}
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("plain distribution: %v", err)
		}
		if err := app.Shutdown(); err != nil {
			t.Errorf("plain distribution: %v", err)
		}
		cancel()
	})
	return ln.Addr().String()
}
