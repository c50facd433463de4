package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serveRead runs ociwf registry serve with args until the test ends,
// reading the start of its output with read.
func serveRead(t *testing.T, read func(*bufio.Reader) error, args ...string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, append([]string{"registry", "serve"}, args...), strings.NewReader(""), pw, &errb)
		pw.Close()
	}()
	if err := read(bufio.NewReader(pr)); err != nil {
		cancel()
		t.Fatalf("registry serve: %v (exit %d) %s", err, <-done, errb.String())
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("registry serve exited %d after shutdown", code)
		}
	})
}

// serveLine runs ociwf registry serve with args until the test ends and
// returns its first line of output (the listening line).
func serveLine(t *testing.T, args ...string) string {
	t.Helper()
	var line string
	serveRead(t, func(r *bufio.Reader) (err error) {
		line, err = r.ReadString('\n')
		return err
	}, args...)
	return line
}

// Without --addr the configuration's http.addr is the listen address;
// --addr overrides it. The listening line says https when serving TLS.
func TestRegistryServeAddrAndScheme(t *testing.T) {
	dir := t.TempDir()
	plain := filepath.Join(dir, "plain.yml")
	os.WriteFile(plain, []byte("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  addr: 127.0.0.2:0\n"), 0o600)
	sock := filepath.Join(dir, "registry.sock")
	unix := filepath.Join(dir, "unix.yml")
	os.WriteFile(unix, []byte("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  net: unix\n  addr: "+sock+"\n"), 0o600)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"http.addr", []string{"--config", plain}, "Serving on http://127.0.0.2:"},
		{"--addr overrides", []string{"--config", plain, "--addr", "127.0.0.1:0"}, "Serving on http://127.0.0.1:"},
		{"unix socket", []string{"--config", unix}, "Serving on unix:" + sock + " (http, storage from " + unix + ")"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if line := serveLine(t, tc.args...); !strings.HasPrefix(line, tc.want) {
				t.Fatalf("%q, want %q", line, tc.want)
			}
		})
	}
	t.Run("tls", func(t *testing.T) {
		cert, key := selfSigned(t, dir)
		conf := filepath.Join(dir, "tls.yml")
		os.WriteFile(conf, []byte("version: 0.1\nstorage:\n  inmemory: {}\nhttp:\n  tls:\n    certificate: "+cert+"\n    key: "+key+"\n"), 0o600)
		line := serveLine(t, "--config", conf, "--addr", "127.0.0.1:0")
		host := strings.TrimPrefix(strings.Fields(line)[2], "https://")
		if !strings.HasPrefix(line, "Serving on https://127.0.0.1:") {
			t.Fatalf("%q", line)
		}
		if _, _, err := net.SplitHostPort(host); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
	})
}

// selfSigned writes a self-signed certificate for 127.0.0.1 and its key
// under dir.
func selfSigned(t *testing.T, dir string) (cert, key string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	cert, key = filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	os.WriteFile(cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return cert, key
}
