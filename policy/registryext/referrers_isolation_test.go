package registryext_test

import (
	"net/http"
	"testing"

	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// hexOf is the encoded part of a manifest's digest, as a repository name
// component.
func hexOf(b []byte) string { return digest.FromBytes(b).Encoded() }

// pushReferrer PUTs a referrer by digest and expects 201.
func (c *client) pushReferrer(what string, m []byte) {
	c.t.Helper()
	expect(c.t, what, c.put(digest.FromBytes(m).String(), m), http.StatusCreated, "")
}

// No repository name, however nested, reaches into another repository's
// referrers index: a name ending in <alg>/<hex> or <alg>/<hex>/<alg>-<hex>
// is a repository of its own.
func TestReferrersIndexPerRepository(t *testing.T) {
	t.Run("a nested name does not break another's listing", func(t *testing.T) {
		host := registrytest.New(t)
		c := newClient(t, host, "workflows/btr3")
		subject := c.manifest("btr3")
		expect(t, "tag 1.4.0", c.put("1.4.0", subject), http.StatusCreated, "")
		sig := c.referrer(subject, "application/vnd.dev.cosign.artifact.sig.v1+json", "sig")
		c.pushReferrer("sign 1.4.0", sig)

		evil := newClient(t, host, "workflows/btr3/sha256/"+hexOf(subject))
		evil.pushReferrer("a referrer in the nested repository", evil.referrer([]byte("anything"), "application/example", "x"))
		expect(t, "tag in the nested repository", evil.put("t", evil.manifest("t")), http.StatusCreated, "")

		resp, idx := c.referrers(subject, "")
		if resp.StatusCode != http.StatusOK || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(sig) {
			t.Fatalf("referrers of 1.4.0: %d %+v", resp.StatusCode, idx.Manifests)
		}
	})
	t.Run("a nested name does not protect another's manifests", func(t *testing.T) {
		host := registrytest.New(t)
		c := newClient(t, host, "a")
		release := c.manifest("release")
		expect(t, "tag 1.0.0", c.put("1.0.0", release), http.StatusCreated, "")
		draft := c.manifest("draft")
		expect(t, "tag draft", c.put("draft", draft), http.StatusCreated, "")

		evil := newClient(t, host, "a/sha256/"+hexOf(release))
		note := evil.referrer([]byte("anything"), "application/example", "x")
		evil.pushReferrer("a referrer in the nested repository", note)
		expect(t, "delete the nested referrer", evil.do(http.MethodDelete, "/manifests/"+digest.FromBytes(note).String(), nil), http.StatusAccepted, "")

		expect(t, "delete the mutable draft", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(draft).String(), nil), http.StatusAccepted, "")
		expect(t, "delete the release", c.do(http.MethodDelete, "/manifests/"+digest.FromBytes(release).String(), nil), http.StatusForbidden, "tag 1.0.0")
	})
	t.Run("a nested name does not break a later push", func(t *testing.T) {
		srv := registrytest.Start(t, registryext.Config{Root: t.TempDir()})
		c := newClient(t, srv.Addr(), "evil")
		subject := c.manifest("subject")
		expect(t, "tag 1.0.0", c.put("1.0.0", subject), http.StatusCreated, "")
		later := c.referrer(subject, "application/example", "later")

		pre := newClient(t, srv.Addr(), "evil/sha256/"+hexOf(subject)+"/sha256-"+hexOf(later))
		pre.pushReferrer("pre-create", pre.referrer([]byte("anything"), "application/example", "x"))

		c.pushReferrer("the later referrer", later)
		resp, idx := c.referrers(subject, "")
		if resp.StatusCode != http.StatusOK || len(idx.Manifests) != 1 || idx.Manifests[0].Digest != digest.FromBytes(later) {
			t.Fatalf("referrers: %d %+v", resp.StatusCode, idx.Manifests)
		}
	})
}
