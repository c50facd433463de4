// Command sigstore-kms-k8s serves cosign's k8s:// key references through
// sigstore's KMS plugin protocol, for the ociwf CLI (which links no
// Kubernetes or GitLab client) and any other sigstore plugin client.
// Install it on PATH beside ociwf. Signing reads the key's password from
// COSIGN_PASSWORD.
package main

import (
	"ociwf.dev/attest/kms/plugin"
	"ociwf.dev/attest/kms/plugin/cosignref"
)

func main() { plugin.Main("k8s", cosignref.Load) }
