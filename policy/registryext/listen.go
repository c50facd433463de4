package registryext

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"reflect"
	"strings"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/distribution/distribution/v3/registry/listener"
	"golang.org/x/crypto/acme"
	"golang.org/x/crypto/acme/autocert"
)

// listen binds the listener http.net and addr name, with Distribution's
// own listener package (TCP with keep-alive, Unix sockets, systemd socket
// activation), and wraps it in TLS when http.tls sets a certificate or
// Let's Encrypt. It reports whether it serves TLS.
func listen(conf *configuration.Configuration, addr string, log *slog.Logger) (net.Listener, bool, error) {
	if conf.HTTP.Debug.Addr != "" {
		// Distribution serves net/http's global mux (pprof, expvar) and
		// its Prometheus metrics there; ociwf serves neither.
		return nil, false, fmt.Errorf("registry: http.debug is not supported: serve Prometheus metrics with --metrics-addr (Config.MetricsAddr)")
	}
	tc, err := tlsConfig(conf, log)
	if err != nil {
		return nil, false, err
	}
	ln, err := listener.NewListener(conf.HTTP.Net, addr)
	if err != nil {
		return nil, false, fmt.Errorf("registry: listen on %s: %w", addr, err)
	}
	if tc == nil {
		return ln, false, nil
	}
	return tls.NewListener(ln, tc), true, nil
}

// listenAddr is where to listen: Config.Addr, else http.addr, else
// DefaultAddr (TCP only: a Unix socket needs a path).
func listenAddr(conf *configuration.Configuration, addr string) (string, error) {
	switch {
	case addr != "":
		return addr, nil
	case conf.HTTP.Addr != "":
		return conf.HTTP.Addr, nil
	case conf.HTTP.Net == "unix":
		return "", fmt.Errorf("registry: http.net is unix but no socket path is set (http.addr or --addr)")
	}
	return DefaultAddr, nil
}

// The tables below are Distribution's (registry/registry.go, v3.1.2):
// the cipher suite names http.tls.ciphersuites accepts, the suites used
// when it is empty, the names of http.tls.minimumtls and of
// http.tls.clientauth. Each returns a fresh table, read when a listener
// is configured.

func tlsCipherSuites() map[string]uint16 {
	return map[string]uint16{
		"TLS_RSA_WITH_3DES_EDE_CBC_SHA":                 tls.TLS_RSA_WITH_3DES_EDE_CBC_SHA,
		"TLS_RSA_WITH_AES_128_CBC_SHA":                  tls.TLS_RSA_WITH_AES_128_CBC_SHA,
		"TLS_RSA_WITH_AES_256_CBC_SHA":                  tls.TLS_RSA_WITH_AES_256_CBC_SHA,
		"TLS_RSA_WITH_AES_128_GCM_SHA256":               tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
		"TLS_RSA_WITH_AES_256_GCM_SHA384":               tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
		"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA":          tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
		"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA":          tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
		"TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA":           tls.TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA,
		"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA":            tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
		"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA":            tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
		"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256":         tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256":       tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384":         tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384":       tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		"TLS_AES_128_GCM_SHA256":                        tls.TLS_AES_128_GCM_SHA256,
		"TLS_AES_256_GCM_SHA384":                        tls.TLS_AES_256_GCM_SHA384,
		"TLS_CHACHA20_POLY1305_SHA256":                  tls.TLS_CHACHA20_POLY1305_SHA256,
	}
}

func tlsDefaultCipherSuites() []uint16 {
	return []uint16{
		tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
		tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
		tls.TLS_AES_128_GCM_SHA256,
		tls.TLS_CHACHA20_POLY1305_SHA256,
		tls.TLS_AES_256_GCM_SHA384,
	}
}

func tlsVersions() map[string]uint16 {
	return map[string]uint16{
		"tls1.2": tls.VersionTLS12,
		"tls1.3": tls.VersionTLS13,
	}
}

func tlsClientAuth() map[configuration.ClientAuth]tls.ClientAuthType {
	return map[configuration.ClientAuth]tls.ClientAuthType{
		configuration.ClientAuthRequestClientCert:          tls.RequestClientCert,
		configuration.ClientAuthRequireAnyClientCert:       tls.RequireAnyClientCert,
		configuration.ClientAuthVerifyClientCertIfGiven:    tls.VerifyClientCertIfGiven,
		configuration.ClientAuthRequireAndVerifyClientCert: tls.RequireAndVerifyClientCert,
	}
}

// tlsDefaultMinimum is Distribution's default http.tls.minimumtls.
const tlsDefaultMinimum = "tls1.2"

// tlsConfig builds the server's TLS configuration from http.tls, or
// returns nil when it sets neither a certificate nor Let's Encrypt. It
// mirrors the TLS part of Distribution's Registry.ListenAndServe
// (registry/registry.go, v3.1.2), which is unexported: minimum version
// tls1.2 by default; cipher suites only below TLS 1.3, Distribution's
// defaults when none are listed; ALPN h2 and http/1.1 unless
// http.http2.disabled; a certificate or Let's Encrypt (autocert), not
// both; client CAs with http.tls.clientauth, require-and-verify when
// that is empty. Unknown names are errors, as there.
//
// Two settings Distribution silently ignores are refused here, since
// either leaves the server more open than its configuration says:
// http.tls options without a certificate or Let's Encrypt (Distribution
// then serves plain HTTP), and http.tls.clientauth without
// http.tls.clientcas (Distribution then asks for no client certificate).
func tlsConfig(conf *configuration.Configuration, log *slog.Logger) (*tls.Config, error) {
	t := conf.HTTP.TLS
	if t.Certificate == "" && t.LetsEncrypt.CacheFile == "" {
		if !reflect.ValueOf(t).IsZero() {
			return nil, fmt.Errorf("registry: http.tls sets options but neither a certificate nor letsencrypt.cachefile: it would serve plain HTTP")
		}
		return nil, nil
	}
	minimum := t.MinimumTLS
	if minimum == "" {
		minimum = tlsDefaultMinimum
	}
	version, ok := tlsVersions()[minimum]
	if !ok {
		return nil, fmt.Errorf("registry: unknown minimum TLS level '%s' specified for http.tls.minimumtls", minimum)
	}
	log.Info("restricting TLS version", "minimum", minimum)
	var suites []uint16
	if version > tls.VersionTLS12 {
		// Go does not let TLS 1.3 cipher suites be configured.
		if len(t.CipherSuites) > 0 {
			log.Warn("http.tls.ciphersuites ignored: TLS 1.3 cipher suites cannot be configured", "minimum", minimum)
		}
	} else if len(t.CipherSuites) == 0 {
		suites = tlsDefaultCipherSuites()
	} else {
		known := tlsCipherSuites()
		for _, name := range t.CipherSuites {
			id, ok := known[name]
			if !ok {
				return nil, fmt.Errorf("registry: unknown TLS cipher suite '%s' specified for http.tls.cipherSuites", name)
			}
			suites = append(suites, id)
		}
	}
	tc := &tls.Config{
		ClientAuth:   tls.NoClientCert,
		NextProtos:   nextProtos(conf),
		MinVersion:   version,
		CipherSuites: suites,
	}
	if le := t.LetsEncrypt; le.CacheFile != "" {
		if t.Certificate != "" {
			return nil, fmt.Errorf("registry: cannot specify both certificate and Let's Encrypt (http.tls.certificate, http.tls.letsencrypt)")
		}
		m := &autocert.Manager{
			HostPolicy: autocert.HostWhitelist(le.Hosts...),
			Cache:      autocert.DirCache(le.CacheFile),
			Email:      le.Email,
			Prompt:     autocert.AcceptTOS,
		}
		if le.DirectoryURL != "" {
			m.Client = &acme.Client{DirectoryURL: le.DirectoryURL}
		}
		tc.GetCertificate = m.GetCertificate
		tc.NextProtos = append(tc.NextProtos, acme.ALPNProto)
	} else {
		cert, err := tls.LoadX509KeyPair(t.Certificate, t.Key)
		if err != nil {
			return nil, fmt.Errorf("registry: http.tls certificate %s, key %s: %w", t.Certificate, t.Key, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if len(t.ClientCAs) == 0 {
		if t.ClientAuth != "" {
			return nil, fmt.Errorf("registry: http.tls.clientauth %s needs http.tls.clientcas", t.ClientAuth)
		}
		return tc, nil
	}
	pool := x509.NewCertPool()
	for _, ca := range t.ClientCAs {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("registry: http.tls.clientcas: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry: http.tls.clientcas: no CA certificate in %s", ca)
		}
	}
	tc.ClientCAs = pool
	tc.ClientAuth = tls.RequireAndVerifyClientCert
	if t.ClientAuth != "" {
		if tc.ClientAuth, ok = tlsClientAuth()[t.ClientAuth]; !ok {
			return nil, fmt.Errorf("registry: unknown client auth mod '%s' specified for http.tls.clientauth", t.ClientAuth)
		}
	}
	log.Info("TLS client certificates", "clientauth", tc.ClientAuth.String(), "clientcas", strings.Join(t.ClientCAs, ","))
	return tc, nil
}

// nextProtos is Distribution's ALPN list (registry/registry.go).
func nextProtos(conf *configuration.Configuration) []string {
	if conf.HTTP.HTTP2.Disabled {
		return []string{"http/1.1"}
	}
	return []string{"h2", "http/1.1"}
}

// serverProtocols is Distribution's (registry/registry.go): HTTP/2
// without TLS only with http.h2c.enabled.
func serverProtocols(conf *configuration.Configuration) *http.Protocols {
	if !conf.HTTP.H2C.Enabled {
		return nil
	}
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(!conf.HTTP.HTTP2.Disabled)
	p.SetUnencryptedHTTP2(true)
	return p
}

// addHeaders adds http.headers to a response, as Distribution's
// handlers.App does for what it serves (App.dispatcher), for the paths
// wrapDistribution answers itself.
func addHeaders(h http.Header, conf http.Header) {
	for name, values := range conf {
		for _, v := range values {
			h.Add(name, v)
		}
	}
}
