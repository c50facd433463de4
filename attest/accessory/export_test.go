package accessory

import (
	"context"

	"github.com/google/go-containerregistry/pkg/name"
	sgbundle "github.com/sigstore/sigstore-go/pkg/bundle"
)

// FoundBundleOf wraps a parsed bundle as Find returns it.
func FoundBundleOf(b *sgbundle.Bundle) FoundBundle { return FoundBundle{Mode: Referrers, b: b} }

// SignBundle is the bundle signature of d that s writes, with ann as the
// subject's annotations.
func SignBundle(ctx context.Context, s *Signer, d name.Digest, ann map[string]string) ([]byte, error) {
	st, err := signStatement(d, ann)
	if err != nil {
		return nil, err
	}
	return signStatementBundle(ctx, s, st)
}
