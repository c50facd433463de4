package registryext

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/storage"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/immutability"
)

// GCOptions configures GarbageCollect. The zero value sweeps unreferenced
// blobs and deletes no manifest.
type GCOptions struct {
	// DryRun reports what would be deleted and deletes nothing.
	DryRun bool
	// DeleteUntagged deletes the manifests no tag keeps (see
	// GarbageCollect), as Distribution's --delete-untagged does.
	DeleteUntagged bool
}

// GCResult counts what a collection deleted (with DryRun: would delete)
// and kept, over every repository of the storage.
type GCResult struct {
	DryRun           bool `json:"dryRun"`
	ManifestsDeleted int  `json:"manifestsDeleted"`
	ManifestsKept    int  `json:"manifestsKept"`
	// ManifestsProtected counts the kept manifests a protected tag, or a
	// version with lifecycle attestations, reaches.
	ManifestsProtected int `json:"manifestsProtected"`
	BlobsDeleted       int `json:"blobsDeleted"`
	BlobsKept          int `json:"blobsKept"`
}

// GarbageCollect removes unreferenced content from the storage cfg names
// (Root or Distribution; cfg.Rules are the rules, nil the default), with
// Distribution's mark and sweep as the engine, keeping everything the
// rules protect. Distribution's own --delete-untagged deletes every
// manifest no tag names, referrers (signatures, attestations) of
// protected manifests included; here, with DeleteUntagged, a manifest is
// deleted only when no tag keeps it: a tag keeps the manifest it names,
// the manifests an index contains (at any depth) and the referrers of all
// of those, found through their subject and ociwf's referrers index; a
// version with lifecycle events or approvals (LifecycleRule) keeps
// itself likewise, and a manifest holding such attestations keeps itself
// and its subject, tagged or not. The referrers index entries of deleted
// manifests are removed. Then
// Distribution's mark and sweep, without its own untagged deletion,
// removes the blobs no remaining manifest references.
//
// Like Distribution's garbage collector, it must run while no registry
// serves the storage: a push in between may lose its blobs.
func GarbageCollect(ctx context.Context, cfg Config, opts GCOptions) (*GCResult, error) {
	if cfg.Root == "" && cfg.Distribution == nil {
		return nil, fmt.Errorf("registry gc: no storage: set a root directory or a Distribution configuration")
	}
	if cfg.Root != "" && cfg.Distribution == nil {
		// A mistyped root would otherwise fail deep in the mark phase.
		if fi, err := os.Stat(cfg.Root); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("registry gc: no registry storage at %s: give the root directory the registry serves: %w", cfg.Root, errdef.ErrInvalid)
		}
	}
	log, rules := cfg.logAndRules()
	conf, err := distributionConfig(cfg)
	if err != nil {
		return nil, err
	}
	if root := filesystemRoot(conf); root != "" {
		held, err := lockRoot(root, true, "registry gc")
		if errors.Is(err, ErrRootInUse) {
			return nil, fmt.Errorf("registry gc: a registry serves %s: stop it (every replica) first, gc needs storage nobody writes: %w", root, ErrRootInUse)
		}
		if err != nil {
			return nil, err
		}
		defer held.Release()
	}
	d, err := factory.Create(ctx, conf.Storage.Type(), conf.Storage.Parameters())
	if err != nil {
		return nil, fmt.Errorf("registry gc: storage: %w", err)
	}
	reg, err := storage.NewRegistry(ctx, d, storage.EnableDelete)
	if err != nil {
		return nil, fmt.Errorf("registry gc: %w", err)
	}
	g := &collector{reg: reg, rules: rules, index: &referrers{d: d}, log: log, opts: opts, res: &GCResult{DryRun: opts.DryRun}, marked: map[digest.Digest]bool{}}
	before := map[digest.Digest]bool{}
	if err := reg.Blobs().Enumerate(ctx, func(dg digest.Digest) error { before[dg] = true; return nil }); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("registry gc: enumerate blobs: %w", err)
	}
	repos, ok := reg.(distribution.RepositoryEnumerator)
	if !ok {
		return nil, fmt.Errorf("registry gc: the storage cannot enumerate its repositories")
	}
	if err := repos.Enumerate(ctx, func(name string) error { return g.repository(ctx, name) }); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("registry gc: %w", err)
	}
	for _, del := range g.deletes {
		log.Info("gc: delete manifest", "repository", del.repo, "digest", del.digest.String(), "dryRun", opts.DryRun)
		if opts.DryRun {
			continue
		}
		if err := storage.NewVacuum(ctx, d).RemoveManifest(del.repo, del.digest, del.tags); err != nil {
			return nil, fmt.Errorf("registry gc: repository %s: delete manifest %s: %w", del.repo, del.digest, err)
		}
		if del.subject != "" {
			if err := g.index.remove(ctx, log, del.repo, del.subject, del.digest); err != nil {
				return nil, fmt.Errorf("registry gc: repository %s: referrers index entry of %s: %w", del.repo, del.digest, err)
			}
		}
	}
	if opts.DryRun {
		for dg := range before {
			if !g.marked[dg] {
				g.res.BlobsDeleted++
			}
		}
		g.res.BlobsKept = len(before) - g.res.BlobsDeleted
		return g.res, nil
	}
	if err := storage.MarkAndSweep(ctx, d, reg, storage.GCOpts{Quiet: true}); err != nil {
		return nil, fmt.Errorf("registry gc: %w", err)
	}
	after := 0
	if err := reg.Blobs().Enumerate(ctx, func(digest.Digest) error { after++; return nil }); err != nil && !isNotFound(err) {
		return nil, fmt.Errorf("registry gc: enumerate blobs: %w", err)
	}
	g.res.BlobsDeleted, g.res.BlobsKept = len(before)-after, after
	return g.res, nil
}

func isNotFound(err error) bool {
	var nf storagedriver.PathNotFoundError
	return errors.As(err, &nf)
}

// collector is one garbage collection's state.
type collector struct {
	reg    distribution.Namespace
	rules  *immutability.Rules
	index  *referrers
	log    *slog.Logger
	opts   GCOptions
	res    *GCResult
	marked map[digest.Digest]bool // blobs the remaining manifests reference (for DryRun's count)
	// deletes are the manifests to delete, once every repository is
	// planned.
	deletes []manifestDelete
}

type manifestDelete struct {
	repo            string
	digest, subject digest.Digest
	tags            []string // whose index entries may name it
}

// node is what the collector needs of one manifest.
type node struct {
	refs    []digest.Digest
	subject digest.Digest
}

// repository plans the deletion of the manifests of repository name that
// no tag keeps.
func (g *collector) repository(ctx context.Context, name string) error {
	named, err := reference.WithName(name)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	repo, err := g.reg.Repository(ctx, named)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	ms, err := repo.Manifests(ctx)
	if err != nil {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	enum, ok := ms.(distribution.ManifestEnumerator)
	if !ok {
		return fmt.Errorf("repository %s: the storage cannot enumerate its manifests", name)
	}
	nodes := map[digest.Digest]node{}
	bySubject := map[digest.Digest][]digest.Digest{}
	// Versions with lifecycle attestations, and those attestations, stay
	// whatever the tags: the lifecycle index names the versions, and a
	// manifest holding such attestations keeps itself and its subject.
	lifecycleRoots, err := lifecycleIndex{d: g.index.d}.subjects(ctx, name)
	if err != nil {
		return fmt.Errorf("repository %s: lifecycle index: %w", name, err)
	}
	blobs := repo.Blobs(ctx)
	err = enum.Enumerate(ctx, func(dg digest.Digest) error {
		man, err := ms.Get(ctx, dg)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		var n node
		for _, r := range man.References() {
			n.refs = append(n.refs, r.Digest)
		}
		mt, payload, err := man.Payload()
		if err != nil {
			return fmt.Errorf("manifest %s: %w", dg, err)
		}
		s, _, ok := subjectOf(mt, payload)
		if ok {
			n.subject = s.Digest
			bySubject[s.Digest] = append(bySubject[s.Digest], dg)
		}
		if carriesLifecycle(ctx, blobs, man) {
			lifecycleRoots = append(lifecycleRoots, dg)
			if ok {
				lifecycleRoots = append(lifecycleRoots, s.Digest)
			}
		}
		nodes[dg] = n
		return nil
	})
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("repository %s: %w", name, err)
	}
	ts := repo.Tags(ctx)
	tags, err := ts.All(ctx)
	var unknown distribution.ErrRepositoryUnknown
	if err != nil && !errors.As(err, &unknown) && !isNotFound(err) {
		return fmt.Errorf("repository %s: tags: %w", name, err)
	}
	roots := slices.Clone(lifecycleRoots)
	protectedRoots := slices.Clone(lifecycleRoots)
	for _, t := range tags {
		desc, err := ts.Get(ctx, t)
		if errors.As(err, new(distribution.ErrTagUnknown)) {
			// A tag directory without a current link: a registry stopped
			// (killed) while it created the tag. There is no such tag; the
			// manifest it was tagging is untagged, as stock Distribution's
			// collector takes it.
			g.log.Warn("gc: a tag without its current link (a tag write that did not finish) is not a tag", "repository", name, "tag", t)
			continue
		}
		if err != nil {
			return fmt.Errorf("repository %s: tag %s: %w", name, t, err)
		}
		roots = append(roots, desc.Digest)
		if mode, _ := g.rules.Match(name, t); mode != immutability.Mutable {
			protectedRoots = append(protectedRoots, desc.Digest)
		}
	}
	// The referrers index names referrers too, manifests pushed without
	// a subject field ociwf could read included.
	for dg := range nodes {
		refs, err := g.index.digests(ctx, g.log, name, dg)
		if err != nil {
			return fmt.Errorf("repository %s: referrers of %s: %w", name, dg, err)
		}
		bySubject[dg] = append(bySubject[dg], refs...)
	}
	keep := reach(nodes, bySubject, roots)
	protected := reach(nodes, bySubject, protectedRoots)
	for dg, n := range nodes {
		if keep[dg] || !g.opts.DeleteUntagged {
			g.res.ManifestsKept++
			if protected[dg] {
				g.res.ManifestsProtected++
			}
			g.marked[dg] = true
			for _, r := range n.refs {
				g.marked[r] = true
			}
			continue
		}
		if protected[dg] {
			return fmt.Errorf("repository %s: manifest %s is protected yet nothing keeps it", name, dg) // cannot happen: protected roots are roots
		}
		g.res.ManifestsDeleted++
		g.deletes = append(g.deletes, manifestDelete{repo: name, digest: dg, subject: n.subject, tags: tags})
	}
	return nil
}

// reach returns the manifests of nodes that roots reach: the manifests
// themselves, what they reference (an index's manifests), and their
// referrers, at any depth.
func reach(nodes map[digest.Digest]node, bySubject map[digest.Digest][]digest.Digest, roots []digest.Digest) map[digest.Digest]bool {
	seen := map[digest.Digest]bool{}
	queue := append([]digest.Digest{}, roots...)
	for len(queue) > 0 {
		dg := queue[0]
		queue = queue[1:]
		n, ok := nodes[dg]
		if !ok || seen[dg] {
			continue // a blob, absent, or done
		}
		seen[dg] = true
		queue = append(queue, n.refs...)
		queue = append(queue, bySubject[dg]...)
	}
	return seen
}
