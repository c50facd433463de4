package keys_test

import (
	"testing"

	"github.com/sigstore/cosign/v2/cmd/cosign/cli/options"

	"ociwf.dev/attest/accessory"
)

// The default Sigstore instances are cosign's.
func TestDefaultsAreCosigns(t *testing.T) {
	for _, c := range []struct{ ours, cosign string }{
		{accessory.DefaultFulcioURL, options.DefaultFulcioURL},
		{accessory.DefaultRekorURL, options.DefaultRekorURL},
		{accessory.DefaultOIDCIssuerURL, options.DefaultOIDCIssuerURL},
	} {
		if c.ours != c.cosign {
			t.Errorf("default %q, cosign's is %q", c.ours, c.cosign)
		}
	}
}
