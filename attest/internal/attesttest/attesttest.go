// Package attesttest gives tests of package attest and its users real keys,
// a loopback registry and published workflows to sign.
package attesttest

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/keys"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registryext"
)

// Password encrypts the keys KeyPair writes.
const Password = "correct horse battery staple"

// Pass returns Password.
func Pass(bool) ([]byte, error) { return []byte(Password), nil }

// Sandbox starts the embedded registry on a free loopback port and writes a
// cosign key pair encrypted with Password, both under a new temporary
// directory, for examples (which have no testing.T). It returns the
// registry's host:port, the private key file and a function that stops the
// registry and removes the directory.
func Sandbox() (host, key string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "ociwf-sandbox")
	if err != nil {
		return "", "", nil, err
	}
	registryext.RouteDistributionLogs(nil)
	srv, err := registryext.New(context.Background(), registryext.Config{Addr: "127.0.0.1:0", Root: filepath.Join(dir, "registry")})
	if err != nil {
		os.RemoveAll(dir)
		return "", "", nil, err
	}
	srv.Start()
	stop = func() {
		_ = srv.Stop(context.Background())
		os.RemoveAll(dir)
	}
	kp, err := accessory.GenerateKeyPair(Pass)
	if err == nil {
		key, _, err = accessory.WriteKeyFiles(filepath.Join(dir, "cosign"), kp, false)
	}
	if err != nil {
		stop()
		return "", "", nil, err
	}
	return srv.Addr(), key, stop, nil
}

// Opener returns an Opener for plain-HTTP loopback registries.
func Opener(t testing.TB) *target.Opener {
	t.Helper()
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// KeyPair writes a fresh cosign key pair encrypted with Password to
// dir/PREFIX.key and dir/PREFIX.pub and returns both paths.
func KeyPair(t testing.TB, dir, prefix string) (key, pub string) {
	t.Helper()
	kp, err := accessory.GenerateKeyPair(Pass)
	if err != nil {
		t.Fatal(err)
	}
	key, pub, err = accessory.WriteKeyFiles(filepath.Join(dir, prefix), kp, false)
	if err != nil {
		t.Fatal(err)
	}
	return key, pub
}

// Signer loads the key file key with Password and closes it after the test.
func Signer(t testing.TB, key string) *accessory.Signer {
	t.Helper()
	s, err := keys.LoadSigner(context.Background(), accessory.SignerOptions{Key: key, Pass: Pass})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// testdata returns the path of a file under the repository's testdata.
func testdata(elem ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(file), "..", "..", "..", "testdata"}, elem...)...)
}

// SLSASchema compiles testdata/schemas/slsa/provenance-v1.schema.json, the
// SLSA v1 provenance predicate schema, asserting formats and content
// encodings.
func SLSASchema(t testing.TB) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open(testdata("schemas", "slsa", "provenance-v1.schema.json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://ociwf.dev/schemas/slsa/provenance-v1.schema.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	c.AssertFormat()
	c.AssertContent()
	s, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Build compiles testdata/workflows/NAME (a fully pinned sample).
func Build(name string) (*ociwf.Build, error) {
	src, err := os.ReadFile(testdata("workflows", name))
	if err != nil {
		return nil, err
	}
	return ociwf.Compile(context.Background(), src, ociwf.CompileOptions{File: name})
}

// Sample is Build for tests.
func Sample(t testing.TB, name string) *ociwf.Build {
	t.Helper()
	b, err := Build(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Push publishes sample NAME to ref (registry/repository:tag) without
// signing it and returns the target and the subject to sign.
func Push(t testing.TB, o *target.Opener, ref, name string) (*target.Target, accessory.Subject) {
	t.Helper()
	ctx := context.Background()
	tg, err := o.Open(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := ociwf.Push(ctx, tg.Storage, Sample(t, name), tg.Reference, ociwf.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tg, accessory.Subject{Repository: tg.Name, Digest: desc.Digest, Tag: tg.Reference}
}
