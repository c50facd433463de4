// Package kms links the KMS providers that key references such as
// awskms://, gcpkms://, azurekms:// and hashivault:// need. Import it for
// its side effect in a program that signs or verifies with KMS keys:
//
//	import _ "ociwf.dev/attest/kms"
//
// Without it (or a blank import of the one provider package wanted, from
// github.com/sigstore/sigstore/pkg/signature/kms/...) such a reference
// fails to load; files with PEM keys need nothing.
package kms

import (
	// Each registers itself with github.com/sigstore/sigstore/pkg/signature/kms.
	_ "github.com/sigstore/sigstore/pkg/signature/kms/aws"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/azure"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/gcp"
	_ "github.com/sigstore/sigstore/pkg/signature/kms/hashivault"
)
