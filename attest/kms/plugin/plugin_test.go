package plugin_test

import (
	"bytes"
	"context"
	"crypto"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature/kms"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	"ociwf.dev/attest/keys"
)

// buildPlugin builds the main package pkg as sigstore-kms-NAME into a
// directory it puts first on PATH.
func buildPlugin(t *testing.T, pkg, name string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", filepath.Join(dir, "sigstore-kms-"+name), pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, out)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
}

// A key served by a plugin program signs through kms.Get (what
// keys.LoadSigner and accessory.LoadVerifier use in a program that links
// no provider for the scheme), and the signature verifies with the key's
// PEM public key and through the plugin again.
func TestPluginRoundTrip(t *testing.T) {
	buildPlugin(t, "./testdata/ociwftest", "ociwftest")
	dir := t.TempDir()
	key, pub := attesttest.KeyPair(t, dir, "plugin")
	t.Setenv("COSIGN_PASSWORD", attesttest.Password)
	ref := "ociwftest://" + key
	ctx := context.Background()

	s, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: ref})
	if err != nil {
		t.Fatalf("keys.LoadSigner(%s): %v", ref, err)
	}
	s.Close()
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("payload signed through a plugin")
	sig, err := sv.SignMessage(bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("SignMessage through the plugin: %v", err)
	}
	local, err := accessory.LoadVerifier(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	if err := local.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		t.Fatalf("the plugin's signature does not verify with the PEM public key: %v", err)
	}
	remote, err := accessory.LoadVerifier(ctx, ref)
	if err != nil {
		t.Fatalf("accessory.LoadVerifier(%s): %v", ref, err)
	}
	if err := remote.VerifySignature(bytes.NewReader(sig), bytes.NewReader(msg)); err != nil {
		t.Fatalf("verify through the plugin: %v", err)
	}
	if err := remote.VerifySignature(bytes.NewReader(sig), strings.NewReader("another payload")); err == nil {
		t.Fatal("the plugin verified a signature over another payload")
	}
	// A wrong password comes back from the plugin as the key error.
	t.Setenv("COSIGN_PASSWORD", "wrong")
	if _, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: ref}); !errors.Is(err, accessory.ErrKey) || !strings.Contains(err.Error(), "wrong password") {
		t.Fatalf("LoadSigner with the wrong password: %v; want ErrKey saying so", err)
	}
}

// The real sigstore-kms-hashivault plugin carries Vault's error back, to a
// signer and to a verifier: both ask for the public key when they load.
func TestHashiVaultPluginError(t *testing.T) {
	buildPlugin(t, "ociwf.dev/cmd/sigstore-kms-hashivault", "hashivault")
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "not-a-token")
	ctx := context.Background()
	_, err := keys.LoadSigner(ctx, accessory.SignerOptions{Key: "hashivault://release"})
	if !errors.Is(err, accessory.ErrKey) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("LoadSigner(hashivault://release) through the plugin: %v; want ErrKey carrying Vault's connection error", err)
	}
	if _, err := accessory.LoadVerifier(ctx, "hashivault://release"); !errors.Is(err, accessory.ErrKey) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("LoadVerifier(hashivault://release) through the plugin: %v; want ErrKey carrying Vault's connection error", err)
	}
}
