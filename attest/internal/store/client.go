package store

import (
	"context"
	"net/http"
	"slices"

	"oras.land/oras-go/v2/registry/remote/auth"

	"ociwf.dev/ociwf/target"
)

// Client is what a Registry needs to reach registries, in the shapes
// oras-go's auth.Client takes: the transport that carries every request and
// the credential for each registry host (an auth.CredentialFunc).
// *target.Opener is a Client; NewClient makes one from a program's own
// transport and credential function.
//
// A Client may also implement PlainHTTP(host string) bool to reach some
// registries over plain HTTP, and UserAgent() string; without them every
// registry is reached over HTTPS with go-containerregistry's user agent.
// (*target.Opener has PlainHTTP; its Options().UserAgent is read too.)
type Client interface {
	Transport() http.RoundTripper
	Credential(ctx context.Context, host string) (auth.Credential, error)
}

// ClientOptions describe a Client made by NewClient.
type ClientOptions struct {
	// Transport carries every request; nil means http.DefaultTransport.
	// A program with its own CA bundle passes a transport whose
	// TLSClientConfig.RootCAs holds it (an http.Client's Transport).
	// Requests are retried over it as Retry says.
	Transport http.RoundTripper
	// Retry is the retry policy; nil means target.DefaultRetryPolicy().
	Retry *target.RetryPolicy
	// Credential returns the credential for a registry host; nil means
	// anonymous access. credentials.Credential adapts an oras-go
	// credentials.Store (a Docker config file, a credential helper).
	Credential auth.CredentialFunc
	// PlainHTTP lists the registry hosts (host[:port]) reached over plain
	// HTTP; every other registry is reached over HTTPS.
	PlainHTTP []string
	// UserAgent, if set, is sent to registries.
	UserAgent string
}

// NewClient returns a Client that connects as opts say.
func NewClient(opts ClientOptions) Client {
	if opts.Transport == nil {
		opts.Transport = http.DefaultTransport
	}
	policy := target.DefaultRetryPolicy()
	if opts.Retry != nil {
		policy = *opts.Retry
	}
	opts.Transport = target.RetryTransport(opts.Transport, policy)
	return ownClient{opts}
}

type ownClient struct{ opts ClientOptions }

func (c ownClient) Transport() http.RoundTripper { return c.opts.Transport }

func (c ownClient) Credential(ctx context.Context, host string) (auth.Credential, error) {
	if c.opts.Credential == nil {
		return auth.EmptyCredential, nil
	}
	return c.opts.Credential(ctx, host)
}

func (c ownClient) PlainHTTP(host string) bool { return slices.Contains(c.opts.PlainHTTP, host) }

func (c ownClient) UserAgent() string { return c.opts.UserAgent }

// plainHTTP reports whether c reaches host over plain HTTP.
func plainHTTP(c Client, host string) bool {
	switch c := c.(type) {
	case interface{ PlainHTTP(string) bool }:
		return c.PlainHTTP(host)
	}
	return false
}

// userAgent is the user agent c asks for, or "".
func userAgent(c Client) string {
	switch c := c.(type) {
	case interface{ UserAgent() string }:
		return c.UserAgent()
	case interface{ Options() target.Options }:
		return c.Options().UserAgent
	}
	return ""
}
