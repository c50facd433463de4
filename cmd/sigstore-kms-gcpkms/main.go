// Command sigstore-kms-gcpkms serves gcpkms:// keys through sigstore's KMS
// plugin protocol, for the ociwf CLI (which links no KMS provider) and
// any other sigstore plugin client. Install it on PATH beside ociwf.
package main

import (
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"

	"ociwf.dev/attest/kms/plugin"
)

func main() { plugin.Main("gcpkms", plugin.Providers) }
