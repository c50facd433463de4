// Package registryext runs ociwf's registry: the CNCF Distribution registry,
// embedded as a library with filesystem storage, behind a small HTTP front
// that adds a health endpoint and graceful shutdown. It is the embedded
// default for local use and tests (`ociwf registry serve`).
package registryext

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/handlers"
	_ "github.com/distribution/distribution/v3/registry/storage/driver/filesystem" // the default storage
	_ "github.com/distribution/distribution/v3/registry/storage/driver/inmemory"   // for tests
)

// DefaultAddr is where Serve listens when Config.Addr is empty: loopback only.
const DefaultAddr = "127.0.0.1:5000"

// HealthPath answers 200 while the server is up.
const HealthPath = "/healthz"

// Config configures a Server.
type Config struct {
	// Addr is the listen address; empty means DefaultAddr. Port 0 picks a
	// free port (see Server.Addr).
	Addr string
	// Root is the storage directory. Empty means in-memory storage, which is
	// lost when the server stops.
	Root string
	// Logger receives the server's own logs; nil discards them.
	Logger *slog.Logger
}

// Server is a running registry.
type Server struct {
	ln   net.Listener
	http *http.Server
	app  *handlers.App
	log  *slog.Logger

	mu    sync.Mutex
	fresh map[net.Conn]struct{} // accepted, no request read yet
	done  chan error            // Serve's result, after Start
}

// New builds the registry and binds its listener; call Serve to accept
// requests.
func New(ctx context.Context, cfg Config) (*Server, error) {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	app, err := newApp(ctx, cfg)
	if err != nil {
		return nil, err
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		_ = app.Shutdown()
		return nil, fmt.Errorf("registry: listen on %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
	})
	mux.Handle("/", app)
	s := &Server{
		ln:  ln,
		app: app,
		log: log,
		http: &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 30 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		fresh: map[net.Conn]struct{}{},
	}
	s.http.ConnState = s.track
	return s, nil
}

// newApp builds Distribution's application from a configuration of ours.
// Distribution reports configuration errors by panicking; they come back
// here as errors.
func newApp(ctx context.Context, cfg Config) (app *handlers.App, err error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, err
	}
	storage := configuration.Storage{"inmemory": configuration.Parameters{}}
	if cfg.Root != "" {
		storage = configuration.Storage{"filesystem": configuration.Parameters{"rootdirectory": cfg.Root}}
	}
	storage["delete"] = configuration.Parameters{"enabled": true}
	storage["maintenance"] = configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}}
	conf := &configuration.Configuration{Version: "0.1", Storage: storage}
	conf.Middleware = map[string][]configuration.Middleware{"repository": {{Name: MiddlewareName}}}
	conf.HTTP.Secret = hex.EncodeToString(secret)
	conf.Log.Level = "warn"
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("registry: configure distribution: %v", r)
		}
	}()
	return handlers.NewApp(ctx, conf), nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts requests until Shutdown; it returns nil after a clean
// shutdown.
func (s *Server) Serve() error {
	s.log.Info("registry listening", "addr", s.Addr())
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// Start serves in the background; Stop ends it. It suits embedding the
// registry in a program or a test.
func (s *Server) Start() {
	s.done = make(chan error, 1)
	go func() { s.done <- s.Serve() }()
}

// Stop shuts down like Shutdown and, after Start, waits for serving to end,
// returning the first error of the two.
func (s *Server) Stop(ctx context.Context) error {
	err := s.Shutdown(ctx)
	if s.done != nil {
		if serr := <-s.done; err == nil {
			err = serr
		}
	}
	return err
}

// track records connections that have not sent a request yet.
func (s *Server) track(c net.Conn, state http.ConnState) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if state == http.StateNew {
		s.fresh[c] = struct{}{}
	} else {
		delete(s.fresh, c)
	}
}

// Shutdown stops accepting requests, waits for those in flight (until ctx
// ends) and releases the storage. Connections that never sent a request
// (clients dial ahead) are closed at once; net/http would otherwise wait
// five seconds for each to speak.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	err := s.http.Shutdown(ctx)
	if aerr := s.app.Shutdown(); err == nil {
		err = aerr
	}
	s.log.Info("registry stopped", "addr", s.Addr())
	return err
}
