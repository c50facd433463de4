package registryext

import (
	"context"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"

	"github.com/distribution/distribution/v3"
	"github.com/distribution/distribution/v3/registry/api/errcode"
	repositorymiddleware "github.com/distribution/distribution/v3/registry/middleware/repository"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/immutability"
	"ociwf.dev/policy/lifecycle"
)

// MiddlewareName is the name ociwf's repository middleware is registered
// under with Distribution. ociwf registry serve adds it to the
// configuration with the state it shares (OptionProtection); it cannot be
// enabled from a configuration file alone.
const MiddlewareName = "ociwf"

// OptionProtection is the middleware option that carries the state the
// middleware shares across requests: the rules, the tag and repository
// locks, the metrics and the referrers index.
const OptionProtection = "protection"

// Registering with Distribution's middleware registry is how Distribution
// extensions are wired; it happens once, when the package loads.
func init() {
	if err := repositorymiddleware.Register(MiddlewareName, newRepository); err != nil {
		panic(err)
	}
}

// protection is what the middleware shares across the requests of one
// registry: the rules, the locks, the metrics and where denials are
// logged.
type protection struct {
	rules     *immutability.Rules
	log       *slog.Logger
	metrics   *metrics
	referrers *referrers
	// lifecycle names the versions with lifecycle attestations.
	lifecycle lifecycleIndex
	// reads is the lifecycle pull rule; nil when none is configured.
	reads *lifecycleReads
	// locks serialise check-and-tag per tag: a tag hashes to one of a
	// fixed set, so memory stays bounded however many tags there are.
	locks [256]sync.Mutex
	// repos order a repository's deletes against its protected writes.
	// A protected write takes its repository's lock shared, then its
	// tag's lock; a delete takes only its repository's lock, exclusive.
	repos repoLocks
}

func (p *protection) lock(repo, tag string) func() {
	h := fnv.New32a()
	h.Write([]byte(repo))
	h.Write([]byte{':'})
	h.Write([]byte(tag))
	mu := &p.locks[h.Sum32()%uint32(len(p.locks))]
	mu.Lock()
	return mu.Unlock
}

// newRepository wraps a repository with ociwf's behaviour.
func newRepository(_ context.Context, repo distribution.Repository, options map[string]any) (distribution.Repository, error) {
	p, ok := options[OptionProtection].(*protection)
	if !ok {
		return nil, fmt.Errorf("repository middleware %s needs its protection state: run it through ociwf registry serve", MiddlewareName)
	}
	return &repository{Repository: repo, p: p}, nil
}

type repository struct {
	distribution.Repository
	p *protection
}

func (r *repository) name() string { return r.Named().Name() }

// noteUser passes the user Distribution authenticated to wrapDistribution, for
// the audit log; the repository's services are asked for with the
// request's context.
func noteUser(ctx context.Context) {
	if st := stateOf(ctx); st != nil {
		st.noteUser(ctx)
	}
}

func (r *repository) Blobs(ctx context.Context) distribution.BlobStore {
	noteUser(ctx)
	return &blobs{BlobStore: r.Repository.Blobs(ctx), r: r}
}

func (r *repository) Manifests(ctx context.Context, options ...distribution.ManifestServiceOption) (distribution.ManifestService, error) {
	noteUser(ctx)
	ms, err := r.Repository.Manifests(ctx, options...)
	if err != nil {
		return nil, err
	}
	return &manifests{ManifestService: ms, r: r}, nil
}

func (r *repository) Tags(ctx context.Context) distribution.TagService {
	noteUser(ctx)
	return &tags{TagService: r.Repository.Tags(ctx), r: r}
}

// Denial is a request the rules refused.
type Denial struct {
	Repository string
	Tag        string
	Digest     digest.Digest
	Rule       string
	Message    string
	// State is the lifecycle state of a pull the lifecycle rule refused.
	State lifecycle.State
}

// detail is the machine-readable detail of a denial's DENIED error:
// the rule, what it protects and, for a refused pull, the lifecycle
// state, so that clients can tell a lifecycle refusal from others.
func (d Denial) detail() map[string]string {
	out := map[string]string{"rule": d.Rule, "repository": d.Repository}
	if d.Tag != "" {
		out["tag"] = d.Tag
	}
	if d.Digest != "" {
		out["digest"] = d.Digest.String()
	}
	if d.State != "" {
		out["state"] = string(d.State)
		out["restriction"] = d.State.Restriction()
	}
	return out
}

// deny records a denial for the request in ctx (wrapDistribution rewrites the
// response, audits it and raises its alert, once per request) and returns
// Distribution's DENIED error. A denial outside a request is logged and
// counted here.
func (r *repository) deny(ctx context.Context, d Denial) error {
	d.Repository = r.name()
	if st := stateOf(ctx); st != nil {
		st.setDenial(d)
	} else {
		r.p.metrics.denied(d.Rule, "unknown")
		r.p.log.Warn("access denied", "alert", AlertName, "repository", d.Repository, "tag", d.Tag, "digest", d.Digest.String(), "rule", d.Rule, "reason", d.Message)
	}
	return errcode.ErrorCodeDenied.WithMessage(d.Message).WithDetail(d.detail())
}
