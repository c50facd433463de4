package accessory_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
)

// LoadVerifier reads what cosign's loader reads for a verifier, without
// linking what cosign links for k8s:// and KMS providers: those references
// fail saying what to link.
func TestLoadVerifierRefs(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no sigstore-kms-* plugin
	ctx := context.Background()
	dir := t.TempDir()
	_, pub := attesttest.KeyPair(t, dir, "k")
	pem, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("OCIWF_TEST_PUBLIC_KEY", string(pem))
	for _, ref := range []string{pub, "env://OCIWF_TEST_PUBLIC_KEY"} {
		if _, err := accessory.LoadVerifier(ctx, ref); err != nil {
			t.Errorf("LoadVerifier(%s): %v", ref, err)
		}
	}
	for _, c := range []struct{ ref, want string }{
		// No plugin is on PATH in this test: the message says which to install.
		{"k8s://ns/cosign", "k8s:// key references are served by the plugin sigstore-kms-k8s, which is not on PATH (install it: go install ociwf.dev/cmd/sigstore-kms-k8s@"},
		{"gitlab://acme/workflows", "gitlab:// key references are served by the plugin sigstore-kms-gitlab, which is not on PATH (install it: go install ociwf.dev/cmd/sigstore-kms-gitlab@"},
		{"pkcs11:token=t;object=o", "pkcs11 key references are not supported (export the token's public key to a PEM file)"},
		// No provider is linked into this test: package attest/kms links them.
		{"hashivault://release", "no KMS provider for hashivault:// is linked into this program (import ociwf.dev/attest/kms"},
		{"hashivault://release", "and no plugin sigstore-kms-hashivault is on PATH (install it: go install ociwf.dev/cmd/sigstore-kms-hashivault@"},
		{"nosuchkms://key", "no KMS provider for nosuchkms://"},
		{filepath.Join(dir, "nope.pub"), "nope.pub"},
		{filepath.Join(dir, "k.key"), "pem to public key"},
	} {
		_, err := accessory.LoadVerifier(ctx, c.ref)
		if !errors.Is(err, accessory.ErrKey) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("LoadVerifier(%s) = %v, want ErrKey with %q", c.ref, err, c.want)
		}
	}
}
