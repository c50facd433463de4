//go:build !ociwf_no_gcs

package registryext

// Google Cloud Storage, for storage from --config. It links gRPC and the
// Google Cloud client stack, about half of the registry's packages: build
// with -tags ociwf_no_gcs for a registry without it.
import _ "github.com/distribution/distribution/v3/registry/storage/driver/gcs"
