package verify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
	"oras.land/oras-go/v2/registry"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
)

// DefaultMaxVersions is how many version tags Versions reads when its
// options name no bound.
const DefaultMaxVersions = 10000

// VersionsOptions tune Versions.
type VersionsOptions struct {
	// Concurrency bounds the versions read at once; 0 means 8.
	Concurrency int
	// MaxTags bounds the version tags read; 0 means DefaultMaxVersions.
	// A repository with more is listed truncated.
	MaxTags int
}

// Version is one tagged version's lifecycle, as `ociwf ls` lists it.
type Version struct {
	Tag    string          `json:"tag"`
	Digest string          `json:"digest,omitempty"`
	State  lifecycle.State `json:"state,omitempty"`
	// Emergency is true when a counted emergency event is in the chain.
	Emergency bool `json:"emergency,omitempty"`
	// Signers are the trusted workflow signers whose signatures verified.
	Signers []string `json:"signers,omitempty"`
	// LastEvent is the time of the newest counted event, if any.
	LastEvent *time.Time `json:"lastEvent,omitempty"`
	// Created is the manifest's org.opencontainers.image.created
	// annotation, read only for a version without events.
	Created *time.Time `json:"created,omitempty"`
	// Error says why the version's state could not be computed; Failed
	// is true when its chain failed verification (broken, forked, rolled
	// back), as opposed to, say, an unreachable registry.
	Error  string `json:"error,omitempty"`
	Failed bool   `json:"failed,omitempty"`
	// Status is the version's full lifecycle status and Err the error
	// behind Error, for callers of the library (not listed in JSON).
	Status *LifecycleStatus `json:"-"`
	Err    error            `json:"-"`
}

// VersionList is the outcome of Versions.
type VersionList struct {
	Repository string    `json:"repository"`
	Versions   []Version `json:"versions"`
	// Truncated is true when the repository has more version tags than
	// MaxTags; only the first MaxTags, in the registry's order, are
	// listed.
	Truncated bool `json:"truncated,omitempty"`
	MaxTags   int  `json:"maxTags"`
}

// errEnough stops a tag listing once enough tags were read.
var errEnough = errors.New("enough tags")

// Versions lists the tagged versions of repo (registry/repository) with
// their verified lifecycle states, reading at most opts.MaxTags tags
// (cosign's and the referrers fallback's accessory tags, and any
// sha256-* tag, are not versions) and opts.Concurrency versions at once.
// A version whose state cannot be computed is listed with its error; the
// error returned is for a repository whose tags cannot be listed.
func (v *Verifier) Versions(ctx context.Context, repo string, opts VersionsOptions) (*VersionList, error) {
	name, tags, truncated, limit, err := v.tags(ctx, repo, opts.MaxTags, "list the versions of")
	if err != nil {
		return nil, err
	}
	list := &VersionList{Repository: name, MaxTags: limit, Versions: []Version{}, Truncated: truncated}
	n := opts.Concurrency
	if n <= 0 {
		n = 8
	}
	list.Versions = make([]Version, len(tags))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(n)
	for i, tag := range tags {
		g.Go(func() error {
			list.Versions[i] = v.version(gctx, name, tag)
			return gctx.Err()
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return list, nil
}

// version reads one tag's lifecycle.
func (v *Verifier) version(ctx context.Context, repo, tag string) Version {
	out := Version{Tag: tag}
	st, err := v.Lifecycle(ctx, repo+":"+tag)
	out.Status, out.Err = st, err
	if st != nil {
		out.Digest, out.Signers = st.Digest, st.Signers
		if st.Status != nil {
			out.State, out.Emergency = st.State, st.Emergency
			if l := st.Last(); l != nil {
				t := l.Event.Time
				out.LastEvent = &t
			}
		}
	}
	if err != nil {
		out.Error, out.Failed = err.Error(), errors.Is(err, errdef.ErrVerification)
		return out
	}
	if out.LastEvent == nil {
		out.Created = v.created(ctx, repo+"@"+st.Digest)
	}
	return out
}

// created reads a manifest's creation annotation; nil when it has none or
// is not a workflow.
func (v *Verifier) created(ctx context.Context, ref string) *time.Time {
	tgt, err := v.opener.Open(ctx, ref)
	if err != nil {
		return nil
	}
	_, m, err := ociwf.FetchManifest(ctx, tgt.Storage, tgt.Reference)
	if err != nil {
		return nil
	}
	t, err := time.Parse(time.RFC3339, m.Annotations[ocispec.AnnotationCreated])
	if err != nil {
		return nil
	}
	return &t
}

// TagList is the outcome of Tags.
type TagList struct {
	// Repository is the repository's name (registry/repository).
	Repository string   `json:"repository"`
	Tags       []string `json:"tags"`
	// Truncated is true when the repository has more version tags than
	// the bound; only the first, in the registry's order, are listed.
	Truncated bool `json:"truncated,omitempty"`
}

// Tags lists the version tags of repo (registry/repository) as Versions
// does, without reading their lifecycle: at most max of them (0 means
// DefaultMaxVersions), leaving out accessory and sha256-* tags. A
// repository the trust policy has no scope for is refused.
func (v *Verifier) Tags(ctx context.Context, repo string, max int) (*TagList, error) {
	name, tags, truncated, _, err := v.tags(ctx, repo, max, "list the version tags of")
	if err != nil {
		return nil, err
	}
	return &TagList{Repository: name, Tags: tags, Truncated: truncated}, nil
}

// tags lists repo's version tags; what names the operation in errors.
func (v *Verifier) tags(ctx context.Context, repo string, limit int, what string) (name string, tags []string, truncated bool, bound int, err error) {
	tgt, err := v.opener.Open(ctx, repo)
	if err != nil {
		return "", nil, false, 0, err
	}
	if tgt.Reference != "" {
		return "", nil, false, 0, fmt.Errorf("%s %s: name a repository, without a tag or digest: %w", what, repo, errdef.ErrInvalidReference)
	}
	if _, err := v.policy.For(scopeName(tgt.Name)); err != nil {
		return "", nil, false, 0, fmt.Errorf("%s %s: %w", what, repo, err)
	}
	lister, ok := tgt.Storage.(registry.TagLister)
	if !ok {
		return "", nil, false, 0, fmt.Errorf("%s %s: the target cannot list tags: %w", what, repo, errdef.ErrInvalid)
	}
	if limit <= 0 {
		limit = DefaultMaxVersions
	}
	tags = []string{}
	err = lister.Tags(ctx, "", func(page []string) error {
		for _, t := range page {
			if immutability.IsAccessoryTag(t) || strings.HasPrefix(strings.ToLower(t), "sha256-") {
				continue
			}
			if len(tags) == limit {
				truncated = true
				return errEnough
			}
			tags = append(tags, t)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return "", nil, false, 0, fmt.Errorf("list tags of %s: %w", repo, target.ListingError(err))
	}
	return tgt.Name, tags, truncated, limit, nil
}
