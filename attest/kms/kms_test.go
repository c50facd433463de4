package kms_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"ociwf.dev/attest/accessory"
	_ "ociwf.dev/attest/kms"
)

// With the package linked, KMS references reach their provider in
// process, with no plugin on PATH: a HashiCorp Vault key is asked of
// Vault (none answers here), where without the package LoadVerifier says
// no provider or plugin is there.
func TestProvidersLinked(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "not-a-token")
	_, err := accessory.LoadVerifier(context.Background(), "hashivault://release")
	var np *accessory.NoProviderError
	if err == nil || errors.As(err, &np) || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Fatalf("LoadVerifier(hashivault://release) with the providers linked: %v; want Vault's connection error", err)
	}
}
