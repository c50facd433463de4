//go:build !ociwf_no_azure

package registryext

// Azure Blob Storage, for storage from --config: build with -tags
// ociwf_no_azure for a registry without it.
import _ "github.com/distribution/distribution/v3/registry/storage/driver/azure"
