// Package registryext runs ociwf's registry: the CNCF Distribution registry,
// embedded as a library, with ociwf's repository middleware and a small
// HTTP handler wrapped around it. The middleware enforces tag immutability
// server-side (package immutability: immutable and append-only tags,
// protected manifests and blobs, atomic check-and-tag), keeps lifecycle
// events and approvals and the versions they are about (LifecycleRule),
// optionally refuses pulls of retired and archived versions
// (LifecycleReads) and serves small blobs from memory; the handler reports
// denials as 403 DENIED, appends every mutating request to a hash-chained
// audit log (package audit), counts requests for Prometheus on a separate
// listener, answers a health endpoint and shuts down gracefully. It is the
// embedded default for local use and tests (`ociwf registry serve`).
package registryext

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/auth"
	"github.com/distribution/distribution/v3/registry/handlers"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"

	"ociwf.dev/policy/audit"
	"ociwf.dev/policy/immutability"
)

// DefaultAddr is where the server listens when neither Config.Addr nor
// http.addr is set: loopback only.
const DefaultAddr = "127.0.0.1:5000"

// HealthPath answers 200 while the server is up.
const HealthPath = "/healthz"

// Config configures a Server.
type Config struct {
	// Addr is the listen address (a socket path when http.net is unix);
	// empty means the Distribution configuration's http.addr, and without
	// one DefaultAddr. Port 0 picks a free port (see Server.Addr).
	Addr string
	// Root is the storage directory. Empty means in-memory storage, which is
	// lost when the server stops.
	Root string
	// Logger receives the server's own logs; nil discards them.
	Logger *slog.Logger
	// Rules are the immutability rules; nil means immutability.Default().
	Rules *immutability.Rules
	// AuditLog is the audit log file; empty means no audit log.
	AuditLog string
	// MetricsAddr, if set, serves Prometheus metrics on /metrics there.
	MetricsAddr string
	// Distribution, if set, is a Distribution configuration (storage
	// driver, auth, TLS, ...) used instead of Root; ociwf's middleware is
	// added to it. Its http section means what it means to Distribution:
	// addr and net, tls, prefix, headers, host, relativeurls, http2, h2c
	// and draintimeout.
	Distribution *configuration.Configuration
	// Timeouts bounds how long clients may take; the zero value means
	// the defaults.
	Timeouts Timeouts
	// Lifecycle, if set, restricts pulls of versions by lifecycle state
	// (retired and archived ones by default) to named readers. A
	// configuration file's ociwf.lifecycle section sets it (ParseConfig)
	// without State, which the program must supply.
	Lifecycle *LifecycleReads
	// Alerts configures the alerts raised for refused requests, beyond
	// the log line and the metric every one gets; a configuration file's
	// ociwf.alerts section sets it (ParseConfig).
	Alerts Alerts
	// Coordination orders protected writes across the replicas that
	// serve one storage; the zero value keeps the locks in this process
	// (one replica). A configuration file's ociwf.coordination section
	// sets it (ParseConfig).
	Coordination Coordination
}

// Server is a running registry.
type Server struct {
	ln        net.Listener
	http      *http.Server
	app       *handlers.App
	log       *slog.Logger
	metrics   *metrics
	audit     *audit.Log
	tls       bool          // serving TLS
	headers   http.Header   // Distribution's http.headers
	drain     time.Duration // how long Shutdown waits for requests in flight
	timeouts  Timeouts
	referrers *referrers
	reads     *lifecycleReads       // nil: no lifecycle pull rule
	access    auth.AccessController // nil: no auth configured
	prefix    string                // Distribution's http.prefix
	webhook   *webhook              // nil: no alert webhook
	coord     Coordinator
	base      string // the registry's URL, for alerts

	metricsLn   net.Listener
	metricsHTTP *http.Server

	mu    sync.Mutex
	fresh map[net.Conn]struct{} // accepted, no request read yet
	done  chan error            // Serve's result, after Start
}

// New builds the registry and binds its listener; call Serve to accept
// requests.
func New(ctx context.Context, cfg Config) (*Server, error) {
	log, rules := cfg.logAndRules()
	conf, err := distributionConfig(cfg)
	if err != nil {
		return nil, err
	}
	if conf.Proxy.RemoteURL != "" {
		// A pull-through cache tags what the upstream registry says,
		// beneath the middleware: immutability cannot hold there.
		return nil, fmt.Errorf("registry: the configuration sets up a pull-through cache (proxy.remoteurl); ociwf's immutability rules cannot hold for one: serve it with plain Distribution")
	}
	d, err := factory.Create(ctx, conf.Storage.Type(), conf.Storage.Parameters())
	if err != nil {
		return nil, fmt.Errorf("registry: storage for the referrers index: %w", err)
	}
	var access auth.AccessController
	for name, params := range conf.Auth {
		if access, err = auth.GetAccessController(name, params); err != nil {
			return nil, fmt.Errorf("registry: auth %s: %w", name, err)
		}
	}
	var reads *lifecycleReads
	if cfg.Lifecycle != nil {
		if reads, err = newLifecycleReads(cfg.Lifecycle, log); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
		reads.cache.ttl = cfg.Coordination.cacheTTL()
		if len(cfg.Lifecycle.Readers) > 0 && len(conf.Auth) == 0 {
			log.Warn("lifecycle pull rule: readers are named but no auth is configured, so no pull is a reader's", "readers", cfg.Lifecycle.Readers)
		}
	}
	var hook AlertWebhook
	if cfg.Alerts.Webhook != nil {
		if hook, err = cfg.Alerts.Webhook.validate(); err != nil {
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	var held *rootLock
	if root := filesystemRoot(conf); root != "" {
		if held, err = serveRoot(root, cfg.Coordination.Mode); err != nil {
			return nil, err
		}
	}
	coord, err := NewCoordinator(cfg.Coordination, filesystemRoot(conf))
	if err != nil {
		held.Release()
		return nil, fmt.Errorf("registry: %w", err)
	}
	coord = &rootHolder{Coordinator: coord, root: held}
	m := newMetrics()
	p := &protection{rules: rules, log: log, metrics: m, referrers: &referrers{d: d}, lifecycle: lifecycleIndex{d: d}, reads: reads, coord: coord,
		createOnly: &createOnly{rules: rules, root: filesystemRoot(conf), log: log}}
	// Move a referrers index written by an older version before serving,
	// so no request waits for it.
	if err := p.referrers.ready(ctx, log); err != nil {
		_ = coord.Close()
		return nil, fmt.Errorf("registry: %w", err)
	}
	var auditLog *audit.Log
	if cfg.AuditLog != "" {
		if auditLog, err = audit.Open(cfg.AuditLog); err != nil {
			_ = coord.Close()
			return nil, fmt.Errorf("registry: %w", err)
		}
	}
	app, err := newApp(ctx, conf, p)
	if err != nil {
		_ = coord.Close()
		closeLog(auditLog)
		return nil, err
	}
	if w := p.createOnly.writes; w != "" {
		log.Info("storage: immutable tag links are created with the storage's create-only write", "write", w)
	}
	t := cfg.Timeouts.withDefaults()
	s := &Server{
		app:       app,
		log:       log,
		metrics:   m,
		audit:     auditLog,
		referrers: p.referrers,
		reads:     reads,
		access:    access,
		prefix:    conf.HTTP.Prefix,
		headers:   conf.HTTP.Headers,
		drain:     conf.HTTP.DrainTimeout,
		timeouts:  t,
		coord:     coord,
		http: &http.Server{
			ReadHeaderTimeout: t.ReadHeader,
			IdleTimeout:       t.Idle,
			Protocols:         serverProtocols(conf),
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		},
		fresh: map[net.Conn]struct{}{},
	}
	if s.drain <= 0 {
		s.drain = DefaultDrainTimeout
	}
	if err := s.bind(conf, cfg); err != nil {
		_ = app.Shutdown()
		_ = coord.Close()
		closeLog(auditLog)
		return nil, err
	}
	s.base = baseURL(conf.HTTP.Host, s.tls, s.ln)
	if cfg.Alerts.Webhook != nil {
		s.webhook = newWebhook(hook, log, m)
	}
	mux := http.NewServeMux()
	mux.HandleFunc(HealthPath, func(w http.ResponseWriter, _ *http.Request) {
		addHeaders(w.Header(), s.headers)
		w.Header().Set("Cache-Control", "no-cache")
		w.WriteHeader(http.StatusOK)
	})
	mux.Handle("/", s.wrapDistribution(app))
	s.http.Handler = s.limitBodies(mux)
	s.http.ConnState = s.track
	return s, nil
}

// filesystemRoot is the root directory of conf's filesystem storage, or
// "" for other storage.
func filesystemRoot(conf *configuration.Configuration) string {
	if conf.Storage.Type() != "filesystem" {
		return ""
	}
	root, _ := conf.Storage.Parameters()["rootdirectory"].(string)
	if root == "" {
		root = "/var/lib/registry" // Distribution's filesystem default
	}
	return root
}

// bind opens the registry's listener (http.net, the address, http.tls)
// and the metrics listener.
func (s *Server) bind(conf *configuration.Configuration, cfg Config) error {
	addr, err := listenAddr(conf, cfg.Addr)
	if err != nil {
		return err
	}
	if s.ln, s.tls, err = listen(conf, addr, s.log); err != nil {
		return err
	}
	if cfg.MetricsAddr == "" {
		return nil
	}
	if s.metricsLn, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
		s.ln.Close()
		return fmt.Errorf("registry: metrics: listen on %s: %w", cfg.MetricsAddr, err)
	}
	mm := http.NewServeMux()
	mm.Handle("/metrics", s.metrics.handler())
	s.metricsHTTP = &http.Server{Handler: mm, ReadHeaderTimeout: s.timeouts.ReadHeader, IdleTimeout: s.timeouts.Idle}
	return nil
}

func closeLog(l *audit.Log) {
	if l != nil {
		_ = l.Close()
	}
}

// MetricsAddr returns the address metrics are served on, or "".
func (s *Server) MetricsAddr() string {
	if s.metricsLn == nil {
		return ""
	}
	return s.metricsLn.Addr().String()
}

// Addr returns the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve accepts requests until Shutdown; it returns nil after a clean
// shutdown.
func (s *Server) Serve() error {
	s.log.Info("registry listening", "addr", s.Addr(), "net", s.Network(), "tls", s.tls, "metrics", s.MetricsAddr())
	if s.metricsHTTP != nil {
		go func() {
			if err := s.metricsHTTP.Serve(s.metricsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error("metrics", "err", err)
			}
		}()
	}
	if err := s.http.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("registry: %w", err)
	}
	return nil
}

// Network returns the listener's network: "tcp" or "unix".
func (s *Server) Network() string { return s.ln.Addr().Network() }

// TLS reports whether the server serves HTTPS (http.tls in the
// Distribution configuration).
func (s *Server) TLS() bool { return s.tls }

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
// ends or the drain timeout, http.draintimeout or DefaultDrainTimeout,
// passes, whichever is first; then it cuts them off) and releases the
// storage. Alerts queued for the webhook get up to its timeout to go out.
// Connections that never sent a request (clients dial ahead) are
// closed at once; net/http would otherwise wait five seconds for each to
// speak.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	for c := range s.fresh {
		c.Close()
	}
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.drain)
	defer cancel()
	err := s.http.Shutdown(ctx)
	if err != nil {
		_ = s.http.Close()
		err = fmt.Errorf("registry: requests in flight cut off at shutdown (drain timeout %s): %w", s.drain, err)
	}
	if s.metricsHTTP != nil {
		if merr := s.metricsHTTP.Shutdown(ctx); err == nil {
			err = merr
		}
	}
	if aerr := s.app.Shutdown(); err == nil {
		err = aerr
	}
	if s.webhook != nil {
		s.webhook.close(ctx)
	}
	if s.audit != nil {
		if lerr := s.audit.Close(); err == nil {
			err = lerr
		}
	}
	if cerr := s.coord.Close(); err == nil {
		err = cerr
	}
	s.log.Info("registry stopped", "addr", s.Addr())
	return err
}
