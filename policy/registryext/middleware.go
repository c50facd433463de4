package registryext

import (
	"context"
	"fmt"
	"log/slog"

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
	// coord hands out the locks: check-and-tag holds its tag's lock,
	// and a repository's lock orders its deletes against its protected
	// writes. A protected write takes its repository's lock shared, then
	// its tag's lock; a delete takes only its repository's lock,
	// exclusive. Nil means local.
	coord Coordinator
	local localLocks
	// createOnly is the storage middleware's state: immutable tag links
	// are created with the storage's create-only write where it has one.
	createOnly *createOnly
}

func (p *protection) coordinator() Coordinator {
	if p.coord == nil {
		return &p.local
	}
	return p.coord
}

// lockTag takes the lock of repo's tag. Writes under it use the lease's
// context, which ends if the lease is lost.
func (p *protection) lockTag(ctx context.Context, repo, tag string) (Lease, error) {
	return p.take(ctx, tagKey(repo, tag), false)
}

// lockRepo takes repo's lock, shared (protected writes) or exclusive
// (deletes).
func (p *protection) lockRepo(ctx context.Context, repo string, shared bool) (Lease, error) {
	return p.take(ctx, repoKey(repo), shared)
}

// take takes key from the coordinator; a refusal is 503 UNAVAILABLE: a
// write that cannot be ordered against the other replicas' is not made
// (fail closed).
func (p *protection) take(ctx context.Context, key string, shared bool) (Lease, error) {
	l, err := p.coordinator().Lock(ctx, key, shared)
	if err != nil {
		p.log.Error("coordination: protected write refused", "key", key, "err", err)
		err = unavailableError(err)
		if st := stateOf(ctx); st != nil {
			st.setUnavailable(err)
		}
		return nil, err
	}
	return l, nil
}

// unavailableError is Distribution's 503 UNAVAILABLE for a coordination
// failure err.
func unavailableError(err error) error {
	return errcode.ErrorCodeUnavailable.WithMessage(err.Error() + "; the write was not made, retry it").WithDetail(map[string]string{"reason": "coordination"})
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
