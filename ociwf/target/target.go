// Package target opens the places workflows are published to and read from:
// a repository on any OCI registry (through oras-go's remote client, with
// Docker credential stores and helpers, static credentials and one retry
// policy) or
// an OCI image layout directory.
package target

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/oci"
	orasdef "oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"

	"ociwf.dev/ociwf/errdef"
)

// Options says how to reach registries. The zero value uses HTTPS and the
// Docker credential configuration.
type Options struct {
	// PlainHTTP talks HTTP instead of HTTPS to every registry (for
	// loopback registries).
	PlainHTTP bool
	// PlainHTTPHosts lists the registries (host[:port]) reached over plain
	// HTTP when PlainHTTP is not set; the others are reached over HTTPS.
	PlainHTTPHosts []string
	// Insecure skips TLS certificate verification.
	Insecure bool
	// Username and Password, when set, are used for every registry instead
	// of the Docker credential configuration.
	Username string
	Password string
	// Credential, when set, gives the credential for each registry host
	// instead of Username and Password or the Docker credential
	// configuration: a program's own credential store
	// (credentials.Credential of an oras-go credentials.Store, say).
	Credential auth.CredentialFunc
	// DockerConfig is the path of a Docker config.json; empty means the
	// default ($DOCKER_CONFIG/config.json or ~/.docker/config.json).
	DockerConfig string
	// OCILayout makes references name OCI image layout directories
	// (DIR:TAG or DIR@DIGEST) instead of registry repositories.
	OCILayout bool
	// UserAgent is sent to registries.
	UserAgent string
	// Transport sends the requests; nil means http.DefaultTransport. An
	// *http.Transport is cloned and tuned (idle connections, Insecure);
	// any other RoundTripper, such as the instrumented one an application
	// installs as http.DefaultTransport, is used as it is, and then
	// Insecure cannot be honoured.
	Transport http.RoundTripper
	// Retry is the retry policy of every request, made by oras-go or by
	// go-containerregistry (under cosign): nil means
	// DefaultRetryPolicy(); NoRetries() sends each request once. The
	// overall deadline is the context's.
	Retry *RetryPolicy
}

// MaxListPages bounds the pages of one tag or referrers listing read from
// a registry; each page is at most oras-go's MaxMetadataBytes (4 MiB).
const MaxListPages = 100

// ListingError returns err, from listing tags or referrers, unchanged,
// except that a listing cut off after MaxListPages pages (oras-go's
// ErrTooManyPages) also matches errdef.ErrTooLarge.
func ListingError(err error) error {
	if errors.Is(err, orasdef.ErrTooManyPages) && !errors.Is(err, errdef.ErrTooLarge) {
		return fmt.Errorf("%w (a registry listing is read for at most %d pages): %w", err, MaxListPages, errdef.ErrTooLarge)
	}
	return err
}

// Opener opens targets with one shared, authenticated HTTP client.
type Opener struct {
	opts      Options
	client    *auth.Client
	transport http.RoundTripper
}

// New returns an Opener for opts.
func New(opts Options) (*Opener, error) {
	base, err := baseTransport(opts)
	if err != nil {
		return nil, err
	}
	policy := DefaultRetryPolicy()
	if opts.Retry != nil {
		policy = *opts.Retry
	}
	tr := RetryTransport(counting{base}, policy)
	client := &auth.Client{Client: &http.Client{Transport: tr}, Cache: auth.NewCache()}
	if opts.UserAgent != "" {
		client.SetUserAgent(opts.UserAgent)
	}
	switch {
	case opts.Credential != nil:
		client.Credential = opts.Credential
	case opts.Username != "" || opts.Password != "":
		cred := auth.Credential{Username: opts.Username, Password: opts.Password}
		client.Credential = func(context.Context, string) (auth.Credential, error) { return cred, nil }
	default:
		var store credentials.Store
		var err error
		if opts.DockerConfig != "" {
			store, err = credentials.NewStore(opts.DockerConfig, credentials.StoreOptions{})
		} else {
			store, err = credentials.NewStoreFromDocker(credentials.StoreOptions{})
		}
		if err != nil {
			return nil, fmt.Errorf("load registry credentials: %w", err)
		}
		client.Credential = credentials.Credential(store)
	}
	return &Opener{opts: opts, client: client, transport: tr}, nil
}

// baseTransport returns the transport that sends an Opener's requests:
// opts.Transport or http.DefaultTransport, tuned when it is an
// *http.Transport, as it is otherwise.
func baseTransport(opts Options) (http.RoundTripper, error) {
	rt := opts.Transport
	if rt == nil {
		rt = http.DefaultTransport
	}
	t, ok := rt.(*http.Transport)
	if !ok {
		if opts.Insecure {
			return nil, fmt.Errorf("skipping TLS verification needs an *http.Transport, and the HTTP transport is a %T: %w", rt, errdef.ErrInvalid)
		}
		return rt, nil
	}
	t = t.Clone()
	// Verifying many versions at once talks to one registry over many
	// connections; keep them instead of redialling (the default keeps 2).
	t.MaxIdleConnsPerHost = 64
	if opts.Insecure {
		t.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it
	}
	return t, nil
}

// PlainHTTP reports whether the Opener reaches host (host[:port]) over
// plain HTTP: every host with Options.PlainHTTP, else those listed in
// Options.PlainHTTPHosts.
func (o *Opener) PlainHTTP(host string) bool {
	return o.opts.PlainHTTP || slices.Contains(o.opts.PlainHTTPHosts, host)
}

// Transport returns the HTTP transport under the Opener's client: TLS as
// the options say, counted under CountRequests, and retrying under the
// Opener's retry policy. Other registry clients (cosign's) use it, with
// their own retries turned off, so that both speak alike and retry alike.
func (o *Opener) Transport() http.RoundTripper { return o.transport }

// Ref is what a parsed reference names: a place and, optionally, a tag or
// digest in it.
type Ref struct {
	// Name is the repository (registry/path) or the layout directory.
	Name string
	// Reference is the tag or digest, or empty when the reference named
	// neither.
	Reference string
}

// Pinned returns Name@dgst, the reference printed after a push.
func (r Ref) Pinned(dgst digest.Digest) string { return r.Name + "@" + dgst.String() }

// IsDigest reports whether the reference names a digest rather than a tag.
func (r Ref) IsDigest() bool {
	_, err := digest.Parse(r.Reference)
	return err == nil
}

// Target is a place opened for writing plus the tag or digest the reference
// named.
type Target struct {
	// Storage holds the content: the repository client
	// (*remote.Repository) or the layout (an oci.Store created on the
	// first write).
	Storage oras.GraphTarget
	Ref
}

// Source is a place opened for reading only plus the tag or digest the
// reference named.
type Source struct {
	// Storage holds the content: the repository client
	// (*remote.Repository) or the layout (*oci.ReadOnlyStore).
	Storage oras.ReadOnlyGraphTarget
	Ref
}

// Open parses ref (registry/repository[:tag|@digest], or with OCILayout
// dir[:tag|@digest]) and opens it for writing; a layout directory is
// created by the first write to it, so nothing is made for a push that
// fails before writing. A reference that does not parse is an error
// matching errdef.ErrInvalidReference.
func (o *Opener) Open(ctx context.Context, ref string) (*Target, error) {
	r, repo, err := o.parse(ref)
	switch {
	case err != nil:
		return nil, err
	case repo != nil:
		return &Target{Storage: repo, Ref: r}, nil
	}
	return &Target{Storage: &layout{dir: r.Name}, Ref: r}, nil
}

// OpenReadOnly parses ref as Open does and opens it for reading only: it
// never writes, and a layout directory must already hold an OCI layout.
func (o *Opener) OpenReadOnly(ctx context.Context, ref string) (*Source, error) {
	r, repo, err := o.parse(ref)
	switch {
	case err != nil:
		return nil, err
	case repo != nil:
		return &Source{Storage: repo, Ref: r}, nil
	}
	if _, err := os.Stat(filepath.Join(r.Name, ocispec.ImageLayoutFile)); err != nil {
		return nil, fmt.Errorf("no OCI layout at %s: %w", r.Name, err)
	}
	store, err := oci.NewFromFS(ctx, os.DirFS(r.Name))
	if err != nil {
		return nil, fmt.Errorf("open OCI layout %s: %w", r.Name, err)
	}
	return &Source{Storage: store, Ref: r}, nil
}

// parse parses ref and, for a registry reference, returns its repository
// client too (nil for a layout, which the caller opens as it needs).
func (o *Opener) parse(ref string) (Ref, *remote.Repository, error) {
	if o.opts.OCILayout {
		r, err := parseLayoutRef(ref)
		return r, nil, err
	}
	parsed, err := registry.ParseReference(ref)
	if err != nil {
		return Ref{}, nil, fmt.Errorf("reference %q: want registry/repository[:tag|@digest]: %v: %w", ref, err, errdef.ErrInvalidReference)
	}
	if _, path, _ := strings.Cut(ref, "/"); parsed.Reference == "" && strings.ContainsAny(path, ":@") {
		return Ref{}, nil, fmt.Errorf("reference %q: empty tag or digest after %q: %w", ref, ref[len(ref)-1:], errdef.ErrInvalidReference)
	}
	repo, err := o.Repository(parsed)
	if err != nil {
		return Ref{}, nil, err
	}
	return Ref{Name: parsed.Registry + "/" + parsed.Repository, Reference: parsed.Reference}, repo, nil
}

// parseLayoutRef parses dir[:tag|@digest], checking the tag or digest as
// registry references are checked.
func parseLayoutRef(ref string) (Ref, error) {
	dir, reference, sep := splitLayoutRef(ref)
	switch {
	case dir == "":
		return Ref{}, fmt.Errorf("OCI layout reference %q: want DIR[:TAG|@DIGEST]: %w", ref, errdef.ErrInvalidReference)
	case sep != "" && reference == "":
		return Ref{}, fmt.Errorf("OCI layout reference %q: empty tag or digest after %q: %w", ref, sep, errdef.ErrInvalidReference)
	}
	if reference != "" {
		r := registry.Reference{Reference: reference}
		check := r.ValidateReferenceAsTag
		if sep == "@" {
			check = r.ValidateReferenceAsDigest
		}
		if err := check(); err != nil {
			return Ref{}, fmt.Errorf("OCI layout reference %q: %v: %w", ref, err, errdef.ErrInvalidReference)
		}
	}
	return Ref{Name: dir, Reference: reference}, nil
}

// Options returns the options the Opener was made with. The password is
// included: callers that log options must redact it.
func (o *Opener) Options() Options { return o.opts }

// Credential returns the credential the Opener presents to host (a registry
// "host[:port]"), from -u/-p or the credential store. An empty credential
// means anonymous access. Other registry clients (the signature store in
// package attest) use it so every connection authenticates the same way.
func (o *Opener) Credential(ctx context.Context, host string) (auth.Credential, error) {
	return o.client.Credential(ctx, host)
}

// Repository returns a remote repository client for a parsed reference.
func (o *Opener) Repository(ref registry.Reference) (*remote.Repository, error) {
	repo, err := remote.NewRepository(ref.Registry + "/" + ref.Repository)
	if err != nil {
		return nil, fmt.Errorf("repository %s/%s: %w", ref.Registry, ref.Repository, err)
	}
	repo.Client = o.client
	repo.PlainHTTP = o.PlainHTTP(ref.Registry)
	repo.TagListMaxPages = MaxListPages
	repo.ReferrerListMaxPages = MaxListPages
	return repo, nil
}

// splitLayoutRef splits dir:tag or dir@digest and returns the separator
// found, if any; a colon inside the last path element's prefix (a Windows
// drive, say) is not taken for a tag separator.
func splitLayoutRef(ref string) (dir, reference, sep string) {
	if i := strings.LastIndex(ref, "@"); i > 0 {
		return ref[:i], ref[i+1:], "@"
	}
	i := strings.LastIndex(ref, ":")
	if i > 0 && !strings.ContainsAny(ref[i+1:], `/\`) {
		return ref[:i], ref[i+1:], ":"
	}
	return ref, "", ""
}
