package kms_test

import (
	"context"
	"testing"

	"ociwf.dev/attest/accessory"
	_ "ociwf.dev/attest/kms"
)

// With the package linked, KMS references reach their provider: a
// HashiCorp Vault key loads (Vault is asked for the key only when it is
// used), where without it LoadVerifier says no provider is linked.
func TestProvidersLinked(t *testing.T) {
	t.Setenv("VAULT_ADDR", "http://127.0.0.1:1")
	t.Setenv("VAULT_TOKEN", "not-a-token")
	if _, err := accessory.LoadVerifier(context.Background(), "hashivault://release"); err != nil {
		t.Fatalf("LoadVerifier(hashivault://release) with the providers linked: %v", err)
	}
}
