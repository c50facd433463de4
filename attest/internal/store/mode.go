package store

// Mode says where signatures and attestations are stored.
type Mode int

const (
	// TagScheme stores them as cosign v2 does by default: in manifests
	// tagged sha256-<hex>.sig and sha256-<hex>.att next to the artifact.
	TagScheme Mode = iota
	// Referrers stores them as OCI 1.1 referrers (manifests whose subject
	// is the artifact), for registries that serve the referrers API; stock
	// cosign reads such signatures with --experimental-oci11.
	Referrers
)

// String returns "tag" or "referrers".
func (m Mode) String() string {
	if m == Referrers {
		return "referrers"
	}
	return "tag"
}

// MarshalText writes "tag" or "referrers".
func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
