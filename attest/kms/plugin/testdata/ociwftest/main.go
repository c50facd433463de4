// Command ociwftest is a sigstore KMS plugin for tests, installed as
// sigstore-kms-ociwftest: ociwftest://PATH serves the cosign key file PATH
// (its password in COSIGN_PASSWORD) through package plugin.
package main

import (
	"context"
	"crypto"
	"os"
	"strings"

	"github.com/sigstore/cosign/v2/pkg/cosign"
	"github.com/sigstore/sigstore/pkg/signature/kms"

	"ociwf.dev/attest/kms/plugin"
)

func main() {
	plugin.Main("ociwftest", func(_ context.Context, ref string, _ crypto.Hash) (kms.SignerVerifier, error) {
		raw, err := os.ReadFile(strings.TrimPrefix(ref, "ociwftest://"))
		if err != nil {
			return nil, err
		}
		sv, err := cosign.LoadPrivateKey(raw, []byte(os.Getenv("COSIGN_PASSWORD")), nil)
		if err != nil {
			return nil, err
		}
		return plugin.KeyOnly(sv, "ecdsa-p256-sha256"), nil
	})
}
