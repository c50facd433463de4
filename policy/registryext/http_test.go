package registryext_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// pki is a test CA with a server certificate for 127.0.0.1 and client
// certificates, written as PEM files under dir.
type pki struct {
	t        *testing.T
	dir      string
	ca       *x509.Certificate
	caKey    *ecdsa.PrivateKey
	pool     *x509.CertPool
	caFile   string
	certFile string
	keyFile  string
	serial   int64
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{t: t, dir: t.TempDir()}
	p.ca, p.caKey = p.issue("ociwf test CA", nil, nil, true)
	p.caFile = p.write("ca.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.ca.Raw}))
	p.pool = x509.NewCertPool()
	p.pool.AddCert(p.ca)
	server, key := p.issue("127.0.0.1", p.ca, p.caKey, false)
	p.certFile = p.write("server.crt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: server.Raw}))
	p.keyFile = p.write("server.key", keyPEM(t, key))
	return p
}

// issue makes a certificate for name signed by parent (self-signed when
// parent is nil).
func (p *pki) issue(name string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, ca bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	p.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		p.t.Fatal(err)
	}
	p.serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(p.serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	if ip := net.ParseIP(name); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	}
	if ca {
		tmpl.IsCA, tmpl.BasicConstraintsValid = true, true
		tmpl.KeyUsage |= x509.KeyUsageCertSign
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		p.t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		p.t.Fatal(err)
	}
	return cert, key
}

func keyPEM(t *testing.T, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func (p *pki) write(name string, b []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// client returns a TLS client certificate signed by the CA, or by a CA
// the server does not know when foreign is set.
func (p *pki) client(foreign bool) tls.Certificate {
	p.t.Helper()
	parent, parentKey := p.ca, p.caKey
	if foreign {
		parent, parentKey = p.issue("another CA", nil, nil, true)
	}
	cert, key := p.issue("ci-client", parent, parentKey, false)
	return tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}
}

// tlsConfig is a client configuration that trusts the CA.
func (p *pki) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: p.pool, MinVersion: tls.VersionTLS12}
}

// parseConfig parses a Distribution configuration file's text.
func parseConfig(t *testing.T, text string) *configuration.Configuration {
	t.Helper()
	conf, err := configuration.Parse(strings.NewReader(text))
	if err != nil {
		t.Fatalf("parse configuration: %v\n%s", err, text)
	}
	return conf
}

// tlsConfigText is a Distribution configuration serving TLS with p's
// server certificate, plus the http.tls lines in extra (indented by four).
func tlsConfigText(p *pki, extra string) string {
	return "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  secret: not-a-real-secret\n  tls:\n    certificate: " + p.certFile + "\n    key: " + p.keyFile + "\n" + extra
}

// get sends a GET through a fresh transport with the given TLS settings
// and returns the response, its body read and closed.
func get(t *testing.T, url string, tc *tls.Config) (*http.Response, error) {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tc, ForceAttemptHTTP2: true}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr, Timeout: 10 * time.Second}).Get(url)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp, nil
}

// http.tls.clientcas makes the server ask for client certificates:
// without http.tls.clientauth every client must present one the CA
// signed, as with Distribution.
func TestTLSClientCertificates(t *testing.T) {
	p := newPKI(t)
	good, foreign := p.client(false), p.client(true)
	for _, tc := range []struct {
		name                    string
		clientauth              string
		none, signed, notSigned bool // handshake succeeds
	}{
		{name: "clientcas alone", none: false, signed: true, notSigned: false},
		{name: "require-and-verify", clientauth: configuration.ClientAuthRequireAndVerifyClientCert, signed: true},
		{name: "verify-if-given", clientauth: configuration.ClientAuthVerifyClientCertIfGiven, none: true, signed: true},
		{name: "require-any", clientauth: configuration.ClientAuthRequireAnyClientCert, signed: true, notSigned: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			extra := "    clientcas:\n      - " + p.caFile + "\n"
			if tc.clientauth != "" {
				extra += "    clientauth: " + tc.clientauth + "\n"
			}
			srv := registrytest.Start(t, registryext.Config{Distribution: parseConfig(t, tlsConfigText(p, extra))})
			url := "https://" + srv.Addr() + "/v2/"
			for _, c := range []struct {
				what  string
				certs []tls.Certificate
				ok    bool
			}{{"no client certificate", nil, tc.none}, {"a certificate the CA signed", []tls.Certificate{good}, tc.signed}, {"a certificate another CA signed", []tls.Certificate{foreign}, tc.notSigned}} {
				conf := p.tlsConfig()
				// Sent even when the server names other CAs.
				conf.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
					if len(c.certs) == 0 {
						return &tls.Certificate{}, nil
					}
					return &c.certs[0], nil
				}
				resp, err := get(t, url, conf)
				switch {
				case c.ok && err != nil:
					t.Errorf("%s: %v", c.what, err)
				case c.ok && resp.StatusCode != http.StatusOK:
					t.Errorf("%s: status %d", c.what, resp.StatusCode)
				case !c.ok && err == nil:
					t.Errorf("%s: served, status %d", c.what, resp.StatusCode)
				}
			}
		})
	}
}

// http.tls.minimumtls and http.tls.ciphersuites restrict the handshake;
// without them the minimum is TLS 1.2, as with Distribution.
func TestTLSVersionsAndCipherSuites(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name, extra string
		client      func(*tls.Config)
		ok          bool
	}{
		{name: "tls1.3 refuses a TLS 1.2 client", extra: "    minimumtls: tls1.3\n", client: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }},
		{name: "tls1.3 serves a TLS 1.3 client", extra: "    minimumtls: tls1.3\n", client: func(c *tls.Config) { c.MinVersion = tls.VersionTLS13 }, ok: true},
		{name: "default refuses TLS 1.1", client: func(c *tls.Config) { c.MinVersion, c.MaxVersion = tls.VersionTLS10, tls.VersionTLS11 }},
		{name: "default serves TLS 1.2", client: func(c *tls.Config) { c.MaxVersion = tls.VersionTLS12 }, ok: true},
		{name: "cipher suite not listed", extra: "    ciphersuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n", client: func(c *tls.Config) {
			c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
		}},
		{name: "cipher suite listed", extra: "    ciphersuites: [TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384]\n", client: func(c *tls.Config) {
			c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384}
		}, ok: true},
		{name: "default cipher suites leave out CBC", client: func(c *tls.Config) {
			c.MaxVersion, c.CipherSuites = tls.VersionTLS12, []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := registrytest.Start(t, registryext.Config{Distribution: parseConfig(t, tlsConfigText(p, tc.extra))})
			conf := p.tlsConfig()
			tc.client(conf)
			resp, err := get(t, "https://"+srv.Addr()+"/v2/", conf)
			if tc.ok && (err != nil || resp.StatusCode != http.StatusOK) {
				t.Fatalf("refused: %v %v", resp, err)
			}
			if !tc.ok && err == nil {
				t.Fatalf("served with TLS %x, cipher suite %s", resp.TLS.Version, tls.CipherSuiteName(resp.TLS.CipherSuite))
			}
		})
	}
}

// http.tls settings Distribution refuses at start-up are refused by New,
// and so are the few that would silently leave the server more open than
// configured, and http.debug, which ociwf does not serve.
func TestHTTPConfigErrors(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct{ name, text, want string }{
		{"unknown minimumtls", tlsConfigText(p, "    minimumtls: tls1.1\n"), "minimumtls"},
		{"unknown cipher suite", tlsConfigText(p, "    ciphersuites: [TLS_NOT_A_SUITE]\n"), "TLS_NOT_A_SUITE"},
		{"certificate and Let's Encrypt", tlsConfigText(p, "    letsencrypt:\n      cachefile: "+filepath.Join(p.dir, "le")+"\n"), "Let's Encrypt"},
		{"unreadable clientcas", tlsConfigText(p, "    clientcas: ["+filepath.Join(p.dir, "missing.crt")+"]\n"), "missing.crt"},
		{"clientcas without CA", tlsConfigText(p, "    clientcas: ["+p.keyFile+"]\n"), "clientcas"},
		{"clientauth without clientcas", tlsConfigText(p, "    clientauth: require-and-verify-client-cert\n"), "clientcas"},
		{"missing key", strings.Replace(tlsConfigText(p, ""), p.keyFile, filepath.Join(p.dir, "none.key"), 1), "none.key"},
		{"debug server", "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  debug:\n    addr: 127.0.0.1:0\n", "http.debug"},
		{"TLS options without a certificate", "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    clientcas: [" + p.caFile + "]\n", "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv, err := registryext.New(t.Context(), registryext.Config{Addr: "127.0.0.1:0", Distribution: parseConfig(t, tc.text)})
			if err == nil {
				srv.Shutdown(context.Background())
				t.Fatal("started")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// http.http2.disabled keeps TLS clients on HTTP/1.1; http.h2c.enabled
// serves HTTP/2 without TLS.
func TestHTTP2Settings(t *testing.T) {
	p := newPKI(t)
	for _, tc := range []struct {
		name, extra string
		major       int
	}{
		{"TLS default", "", 2},
		{"TLS http2 disabled", "  http2:\n    disabled: true\n", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := registrytest.Start(t, registryext.Config{Distribution: parseConfig(t, tlsConfigText(p, "")+tc.extra)})
			resp, err := get(t, "https://"+srv.Addr()+"/v2/", p.tlsConfig())
			if err != nil {
				t.Fatal(err)
			}
			if resp.ProtoMajor != tc.major {
				t.Fatalf("served over %s", resp.Proto)
			}
		})
	}
	t.Run("h2c", func(t *testing.T) {
		srv := registrytest.Start(t, registryext.Config{Distribution: parseConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  h2c:\n    enabled: true\n")})
		var protocols http.Protocols
		protocols.SetUnencryptedHTTP2(true)
		tr := &http.Transport{Protocols: &protocols}
		defer tr.CloseIdleConnections()
		resp, err := (&http.Client{Transport: tr}).Get("http://" + srv.Addr() + "/v2/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.ProtoMajor != 2 {
			t.Fatalf("served over %s", resp.Proto)
		}
	})
}

// http.addr is the listen address unless Config.Addr overrides it.
func TestListenAddress(t *testing.T) {
	conf := "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.2:0\n"
	for _, tc := range []struct{ name, addr, host string }{
		{"from the configuration", "", "127.0.0.2"},
		{"Config.Addr overrides", "127.0.0.1:0", "127.0.0.1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			registryext.RouteDistributionLogs(nil)
			srv, err := registryext.New(t.Context(), registryext.Config{Addr: tc.addr, Distribution: parseConfig(t, conf)})
			if err != nil {
				t.Fatal(err)
			}
			srv.Start()
			t.Cleanup(func() { srv.Stop(context.Background()) })
			if host, _, _ := net.SplitHostPort(srv.Addr()); host != tc.host {
				t.Fatalf("listening on %s", srv.Addr())
			}
			if resp, err := get(t, "http://"+srv.Addr()+"/v2/", nil); err != nil || resp.StatusCode != http.StatusOK {
				t.Fatalf("GET /v2/: %v %v", resp, err)
			}
		})
	}
}

// http.net: unix serves on a Unix socket at http.addr.
func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "registry.sock")
	srv := registrytest.Start(t, registryext.Config{Distribution: parseConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  net: unix\n  addr: "+sock+"\n")})
	if srv.Addr() != sock {
		t.Fatalf("listening on %s", srv.Addr())
	}
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}
	defer tr.CloseIdleConnections()
	resp, err := (&http.Client{Transport: tr}).Get("http://registry/v2/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /v2/: %d", resp.StatusCode)
	}
}

// http.prefix moves the API (and the referrers API) under a path;
// http.headers appear on every response of the API, the health endpoint
// and the referrers API included.
func TestPrefixAndHeaders(t *testing.T) {
	conf := parseConfig(t, `version: 0.1
storage:
  inmemory: {}
http:
  prefix: /registry/
  headers:
    X-Content-Type-Options: [nosniff]
    Strict-Transport-Security: [max-age=31536000]
`)
	srv := registrytest.Start(t, registryext.Config{Distribution: conf})
	base := "http://" + srv.Addr()
	referrers := "/v2/workflows/a/referrers/" + digest.FromString("x").String()
	for _, tc := range []struct {
		path    string
		status  int
		headers bool
	}{
		{"/registry/v2/", http.StatusOK, true},
		{"/registry" + referrers, http.StatusOK, true},
		{registryext.HealthPath, http.StatusOK, true},
		{"/v2/", http.StatusNotFound, false},
	} {
		resp, err := get(t, base+tc.path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d", tc.path, resp.StatusCode)
		}
		if !tc.headers {
			continue
		}
		for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "Strict-Transport-Security": "max-age=31536000"} {
			if got := resp.Header.Values(name); len(got) != 1 || got[0] != want {
				t.Errorf("%s: %s: %q", tc.path, name, got)
			}
		}
	}
}

// _catalog lists repositories with the built-in filesystem storage.
func TestCatalogWithRoot(t *testing.T) {
	host := registrytest.New(t)
	c := newClient(t, host, "workflows/listed")
	if r := c.put("1.0.0", c.manifest("a")); r.status != http.StatusCreated {
		t.Fatalf("push: %+v", r)
	}
	resp, err := http.Get("http://" + host + "/v2/_catalog?n=10")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"workflows/listed"`) {
		t.Fatalf("catalog: %d %s", resp.StatusCode, body)
	}
}

// http.tls.letsencrypt alone serves TLS with certificates autocert will
// fetch on the first handshake (no network here, so only start-up is
// checked).
func TestLetsEncryptStarts(t *testing.T) {
	conf := parseConfig(t, "version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    letsencrypt:\n      cachefile: "+filepath.Join(t.TempDir(), "le")+"\n      hosts: [registry.example.com]\n")
	if srv := registrytest.Start(t, registryext.Config{Distribution: conf}); !srv.TLS() {
		t.Fatal("serving plain HTTP")
	}
}
