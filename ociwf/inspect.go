package ociwf

import (
	"context"
	"errors"
	"fmt"
	"sort"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf/target"
)

// MaxInspectTags bounds how many tags Inspect resolves to find the ones that
// name the inspected digest.
const MaxInspectTags = 1000

// Inspection is what Inspect reports about a workflow version.
type Inspection struct {
	Descriptor ocispec.Descriptor `json:"descriptor"`
	Manifest   ocispec.Manifest   `json:"manifest"`
	Config     Config             `json:"config"`
	// Tags lists the tags that name this digest, when src can list tags.
	Tags []string `json:"tags"`
	// TagsTruncated is true when the repository had more tags than
	// MaxInspectTags and not all were checked.
	TagsTruncated bool `json:"tagsTruncated,omitempty"`
}

// Inspect resolves ref once and reports the verified manifest, its config and
// the tags that name the same digest.
func Inspect(ctx context.Context, src oras.ReadOnlyTarget, ref string) (*Inspection, error) {
	desc, m, cfg, err := fetchHead(ctx, src, ref)
	if err != nil {
		return nil, err
	}
	in := &Inspection{Descriptor: desc, Manifest: m.Manifest, Config: *cfg, Tags: []string{}}
	lister, ok := src.(registry.TagLister)
	if !ok {
		return in, nil
	}
	var tags []string
	errStop := errors.New("stop")
	err = lister.Tags(ctx, "", func(page []string) error {
		for _, t := range page {
			if len(tags) == MaxInspectTags {
				in.TagsTruncated = true
				return errStop
			}
			tags = append(tags, t)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, fmt.Errorf("list tags: %w", target.ListingError(err))
	}
	for _, t := range tags {
		if d, err := src.Resolve(ctx, t); err == nil && d.Digest == desc.Digest {
			in.Tags = append(in.Tags, t)
		}
	}
	sort.Strings(in.Tags)
	return in, nil
}
