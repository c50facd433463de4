package registryext_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/registryext"
)

// startPaged starts a registry storing under a temporary directory whose
// referrers pages hold at most maxBytes and maxCount descriptors (zero:
// the defaults).
func startPaged(t *testing.T, maxBytes int64, maxCount int) *registryext.Server {
	t.Helper()
	registryext.RouteDistributionLogs(nil)
	srv, err := registryext.New(context.Background(), registryext.Config{Addr: "127.0.0.1:0", Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	registryext.SetReferrersPage(srv, maxBytes, maxCount)
	srv.Start()
	t.Cleanup(func() {
		if err := srv.Stop(context.Background()); err != nil {
			t.Errorf("registry: %v", err)
		}
	})
	return srv
}

// annotated builds a referrer of subject carrying an annotation of size
// bytes.
func (c *client) annotated(subject []byte, artifactType, layer string, size int) []byte {
	c.t.Helper()
	var m ocispec.Manifest
	if err := json.Unmarshal(c.referrer(subject, artifactType, layer), &m); err != nil {
		c.t.Fatal(err)
	}
	m.Annotations = map[string]string{"org.example.note": strings.Repeat("n", size)}
	b, _ := json.Marshal(m)
	return b
}

// tagged pushes a manifest of one layer under tag and returns it.
func (c *client) tagged(tag, layer string) []byte {
	c.t.Helper()
	m := c.manifest(layer)
	expect(c.t, "tag "+tag, c.put(tag, m), http.StatusCreated, "")
	return m
}

// pushReferrers pushes n referrers of subject, each with an annotation of
// size bytes, and returns them.
func (c *client) pushReferrers(subject []byte, artifactType, layer string, n, size int) [][]byte {
	c.t.Helper()
	var out [][]byte
	for i := range n {
		m := c.annotated(subject, artifactType, fmt.Sprintf("%s-%d", layer, i), size)
		c.pushReferrer(layer, m)
		out = append(out, m)
	}
	return out
}

var nextLink = regexp.MustCompile(`^<([^>]+)>; rel="next"$`)

// page is one response of the referrers API.
type page struct {
	size  int
	index ocispec.Index
	next  string // the Link target, resolved
	hdr   http.Header
}

func (c *client) page(u string) page {
	c.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		c.t.Fatalf("GET %s: %d %s %v", u, resp.StatusCode, b, err)
	}
	p := page{size: len(b), hdr: resp.Header}
	if err := json.Unmarshal(b, &p.index); err != nil {
		c.t.Fatalf("GET %s: %v", u, err)
	}
	if l := resp.Header.Get("Link"); l != "" {
		m := nextLink.FindStringSubmatch(l)
		if m == nil {
			c.t.Fatalf("Link %q", l)
		}
		next, err := resp.Request.URL.Parse(m[1])
		if err != nil {
			c.t.Fatal(err)
		}
		p.next = next.String()
	}
	return p
}

// all follows the Link headers from u and returns every page.
func (c *client) all(u string) []page {
	c.t.Helper()
	var pages []page
	for i := 0; u != ""; i++ {
		if i > 100 {
			c.t.Fatal("more than 100 pages")
		}
		p := c.page(u)
		pages = append(pages, p)
		u = p.next
	}
	return pages
}

func digestsOf(pages []page) []digest.Digest {
	var out []digest.Digest
	for _, p := range pages {
		for _, d := range p.index.Manifests {
			out = append(out, d.Digest)
		}
	}
	return out
}

func sortedDigests(ms ...[]byte) []digest.Digest {
	var out []digest.Digest
	for _, m := range ms {
		out = append(out, digest.FromBytes(m))
	}
	slices.Sort(out)
	return out
}

// The referrers API answers in pages bounded by bytes and by count, in
// digest order, with a Link to the next; oras-go follows them, with and
// without an artifactType filter.
func TestReferrersPages(t *testing.T) {
	const maxBytes, maxCount = 8 << 10, 4
	srv := startPaged(t, maxBytes, maxCount)
	c := newClient(t, srv.Addr(), "workflows/paged")
	subject := c.tagged("1.0.0", "subject")
	sigs := c.pushReferrers(subject, "application/vnd.example.sig", "sig", 9, 2000)
	atts := c.pushReferrers(subject, "application/vnd.example.att", "att", 5, 10)
	base := c.base + "/referrers/" + digest.FromBytes(subject).String()

	pages := c.all(base)
	if got, want := digestsOf(pages), sortedDigests(append(slices.Clone(sigs), atts...)...); !slices.Equal(got, want) {
		t.Fatalf("pages list\n%v\nwant\n%v", got, want)
	}
	if len(pages) < 4 {
		t.Fatalf("%d pages", len(pages))
	}
	for i, p := range pages {
		if n := len(p.index.Manifests); n > maxCount || n == 0 || (n > 1 && p.size > maxBytes) {
			t.Fatalf("page %d: %d descriptors, %d bytes", i, n, p.size)
		}
		if p.index.MediaType != ocispec.MediaTypeImageIndex || p.index.SchemaVersion != 2 || p.hdr.Get("Content-Type") != ocispec.MediaTypeImageIndex {
			t.Fatalf("page %d: %+v %v", i, p.index, p.hdr)
		}
	}

	filtered := c.all(base + "?artifactType=" + url.QueryEscape("application/vnd.example.sig"))
	if got, want := digestsOf(filtered), sortedDigests(sigs...); !slices.Equal(got, want) {
		t.Fatalf("filtered\n%v\nwant\n%v", got, want)
	}
	if len(filtered) < 2 {
		t.Fatalf("filtered: %d pages", len(filtered))
	}
	for _, p := range filtered {
		if p.hdr.Get("OCI-Filters-Applied") != "artifactType" {
			t.Fatalf("filtered page: %v", p.hdr)
		}
	}

	// oras-go follows the Link header, filtered or not, and with a page
	// size of its own (n).
	ctx := context.Background()
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subject), Size: int64(len(subject))}
	for _, tc := range []struct {
		artifactType string
		pageSize     int
		want         []digest.Digest
	}{
		{"", 0, sortedDigests(append(slices.Clone(sigs), atts...)...)},
		{"", 3, sortedDigests(append(slices.Clone(sigs), atts...)...)},
		{"application/vnd.example.att", 0, sortedDigests(atts...)},
		{"application/vnd.example.sig", 2, sortedDigests(sigs...)},
	} {
		c.repo.ReferrerListPageSize = tc.pageSize
		var got []digest.Digest
		calls := 0
		err := c.repo.Referrers(ctx, desc, tc.artifactType, func(refs []ocispec.Descriptor) error {
			calls++
			for _, r := range refs {
				got = append(got, r.Digest)
			}
			return nil
		})
		if err != nil || !slices.Equal(got, tc.want) || calls < 2 {
			t.Fatalf("oras-go Referrers(%q, n=%d): %v, %d calls\n%v\nwant\n%v", tc.artifactType, tc.pageSize, err, calls, got, tc.want)
		}
	}
	c.repo.ReferrerListPageSize = 0

	// n bounds the count; n=0 is an empty list without a Link.
	if p := c.page(base + "?n=2"); len(p.index.Manifests) != 2 || p.next == "" {
		t.Fatalf("n=2: %d, next %q", len(p.index.Manifests), p.next)
	}
	if p := c.page(base + "?n=0"); len(p.index.Manifests) != 0 || p.next != "" {
		t.Fatalf("n=0: %d, next %q", len(p.index.Manifests), p.next)
	}
	for _, q := range []string{"?n=x", "?n=-1", "?last=sha256:nothex"} {
		resp, err := http.Get(base + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %d", q, resp.StatusCode)
		}
	}
}

// A listing stays consistent while referrers come and go: it continues
// after the last descriptor it returned, so nothing is listed twice and
// nothing present throughout is missed.
func TestReferrersPagesUnderWrites(t *testing.T) {
	srv := startPaged(t, 0, 3)
	c := newClient(t, srv.Addr(), "workflows/moving")
	subject := c.tagged("draft", "subject")
	refs := c.pushReferrers(subject, "application/vnd.example", "r", 8, 10)
	base := c.base + "/referrers/" + digest.FromBytes(subject).String()
	first := c.page(base)
	if len(first.index.Manifests) != 3 || first.next == "" {
		t.Fatalf("first page: %+v", first)
	}
	cursor := first.index.Manifests[2].Digest
	// Meanwhile: one referrer listed already goes, and new ones arrive on
	// both sides of the cursor.
	gone := first.index.Manifests[0].Digest
	expect(t, "delete a listed referrer", c.do(http.MethodDelete, "/manifests/"+gone.String(), nil), http.StatusAccepted, "")
	var before, after []byte
	for i := 0; (before == nil || after == nil) && i < 200; i++ {
		m := c.referrer(subject, "application/vnd.example", fmt.Sprintf("new-%d", i))
		switch d := digest.FromBytes(m); {
		case d < cursor && before == nil:
			before = m
		case d > cursor && after == nil:
			after = m
		default:
			continue
		}
		c.pushReferrer("new referrer", m)
	}
	if before == nil || after == nil {
		t.Fatal("no new referrers on both sides of the cursor")
	}
	rest := c.all(first.next)
	got := append(digestsOf([]page{first}), digestsOf(rest)...)
	want := append(sortedDigests(refs...), digest.FromBytes(after))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("listed\n%v\nwant\n%v", got, want)
	}
}

// With the default bounds a page stays within oras-go's 4 MiB limit on
// metadata, so large referrers are listed over several pages instead of
// failing the client.
func TestReferrersDefaultPageFitsClients(t *testing.T) {
	srv := startPaged(t, 0, 0)
	c := newClient(t, srv.Addr(), "workflows/big")
	subject := c.tagged("1.0.0", "subject")
	refs := c.pushReferrers(subject, "application/vnd.example", "big", 4, 1500<<10)
	var got []digest.Digest
	desc := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subject), Size: int64(len(subject))}
	err := c.repo.Referrers(context.Background(), desc, "", func(rs []ocispec.Descriptor) error {
		for _, r := range rs {
			got = append(got, r.Digest)
		}
		return nil
	})
	if err != nil || !slices.Equal(got, sortedDigests(refs...)) {
		t.Fatalf("oras-go: %v, %d referrers", err, len(got))
	}
}

// One GET streams its descriptors: the server holds about one of them at
// a time, never the whole index.
func TestReferrersStream(t *testing.T) {
	const n, size = 24, 1 << 20
	srv := startPaged(t, 1<<30, 1000)
	c := newClient(t, srv.Addr(), "workflows/stream")
	subject := c.tagged("1.0.0", "subject")
	c.pushReferrers(subject, "application/vnd.example", "big", n, size)
	live := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	base := live()
	resp, err := http.Get(c.base + "/referrers/" + digest.FromBytes(subject).String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, size)
	var peak, total uint64
	for {
		k, err := io.ReadFull(resp.Body, buf)
		total += uint64(k)
		if h := live(); h > peak {
			peak = h
		}
		if err != nil {
			break
		}
	}
	if total < n*size {
		t.Fatalf("read %d bytes", total)
	}
	grew := int64(peak) - int64(base)
	t.Logf("the heap grew by %d KiB while serving %d KiB", grew>>10, total>>10)
	if grew > 12<<20 {
		t.Fatalf("the heap grew by %d MiB while serving %d MiB of referrers", grew>>20, total>>20)
	}
}
