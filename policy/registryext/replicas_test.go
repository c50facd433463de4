package registryext_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// replicaConfig is the Distribution configuration of a replica serving
// root: replicas share the storage and http.secret (upload state is
// signed with it, and an upload may go to one replica and end on
// another), and coordinate as coordination (YAML of ociwf.coordination).
func replicaConfig(root, coordination string) string {
	return storageConfig(fmt.Sprintf("filesystem:\n    rootdirectory: %s", root), coordination)
}

// storageConfig is replicaConfig for storage, the YAML of one storage
// driver's section (indented under storage:).
func storageConfig(storage, coordination string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  %s
  delete:
    enabled: true
http:
  secret: replicas-share-this-secret
ociwf:
  coordination: %s
`, storage, coordination)
}

// startReplicas starts n registries on root, coordinating as coordination,
// and a round-robin front (net/http/httputil.ReverseProxy) before them;
// it returns the front's host:port and the replicas'.
func startReplicas(t testing.TB, n int, root, coordination string) (string, []string) {
	t.Helper()
	srcs := make([]string, n)
	for i := range srcs {
		srcs[i] = replicaConfig(root, coordination)
	}
	return startConfigured(t, srcs)
}

// startConfigured starts a registry with each configuration of srcs, and
// a round-robin front before them, as startReplicas.
func startConfigured(t testing.TB, srcs []string) (string, []string) {
	t.Helper()
	var hosts []string
	var targets []*url.URL
	for i, src := range srcs {
		cfg, err := registryext.ParseConfig(fmt.Sprintf("replica-%d.yaml", i), []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		cfg.AuditLog = filepath.Join(t.TempDir(), fmt.Sprintf("audit-%d.jsonl", i))
		srv := registrytest.Start(t, cfg)
		hosts = append(hosts, srv.Addr())
		targets = append(targets, &url.URL{Scheme: "http", Host: srv.Addr()})
	}
	return startFront(t, targets), hosts
}

// startFront serves a round-robin reverse proxy to targets on loopback.
func startFront(t testing.TB, targets []*url.URL) string {
	t.Helper()
	var next atomic.Uint64
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
			r.Out.Host = r.In.Host
		},
		Transport: &http.Transport{MaxIdleConnsPerHost: 64},
	}
	front := httptest.NewServer(proxy)
	t.Cleanup(front.Close)
	return strings.TrimPrefix(front.URL, "http://")
}

// rclient talks HTTP to one repository through host.
type rclient struct {
	t    *testing.T
	hc   *http.Client
	host string
	repo string
}

func newRClient(t *testing.T, host, repo string) *rclient {
	return &rclient{t: t, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}, host: host, repo: repo}
}

func (c *rclient) url(kind, ref string) string {
	return "http://" + c.host + "/v2/" + c.repo + "/" + kind + "/" + ref
}

// send does a request and returns its status, body and digest header; a
// transport error is status 0.
func (c *rclient) send(ctx context.Context, method, u, contentType string, body []byte) (int, []byte, string) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		c.t.Error(err)
		return 0, nil, ""
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", ocispec.MediaTypeImageManifest+","+ocispec.MediaTypeImageIndex)
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, []byte(err.Error()), ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Docker-Content-Digest")
}

// blob uploads content (POST, then PUT to the upload's location: the two
// may reach different replicas) and returns its descriptor.
func (c *rclient) blob(mediaType string, content []byte) ocispec.Descriptor {
	c.t.Helper()
	d := ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(content), Size: int64(len(content))}
	req, _ := http.NewRequest(http.MethodPost, "http://"+c.host+"/v2/"+c.repo+"/blobs/uploads/", nil)
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		c.t.Fatalf("open upload: %d", resp.StatusCode)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		c.t.Fatal(err)
	}
	loc = (&url.URL{Scheme: "http", Host: c.host}).ResolveReference(loc)
	q := loc.Query()
	q.Set("digest", d.Digest.String())
	loc.RawQuery = q.Encode()
	if st, b, _ := c.send(context.Background(), http.MethodPut, loc.String(), "application/octet-stream", content); st != http.StatusCreated {
		c.t.Fatalf("upload %s: %d %s", d.Digest, st, b)
	}
	return d
}

// manifestJSON is an OCI image manifest of layers with annotations.
func manifestJSON(config ocispec.Descriptor, layers []ocispec.Descriptor, subject *ocispec.Descriptor, ann map[string]string) []byte {
	m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: config, Layers: layers, Subject: subject, Annotations: ann}
	m.SchemaVersion = 2
	if m.Layers == nil {
		m.Layers = []ocispec.Descriptor{}
	}
	b, _ := json.Marshal(m)
	return b
}

func (c *rclient) put(ctx context.Context, ref string, m []byte) (int, []byte) {
	st, b, _ := c.send(ctx, http.MethodPut, c.url("manifests", ref), ocispec.MediaTypeImageManifest, m)
	return st, b
}

// get returns a manifest's status, body and digest.
func (c *rclient) get(ref string) (int, []byte, string) {
	return c.send(context.Background(), http.MethodGet, c.url("manifests", ref), "", nil)
}

// errCode is the first error code of a registry error body.
func errCode(b []byte) string {
	var e struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	if json.Unmarshal(b, &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// replicaSetups are the setups of 3 replicas the tests run: each starts
// them, on fresh storage, and returns the front. redis starts a
// redis-server, s3 an S3 server (startS3).
func replicaSetups() map[string]func(t *testing.T) string {
	redis := func(t *testing.T) string {
		addr, _ := startRedis(t)
		return fmt.Sprintf("{mode: redis, redis: {addr: %q, lease: 3s}}", addr)
	}
	return map[string]func(t *testing.T) string{
		"filesystem": func(t *testing.T) string {
			front, _ := startReplicas(t, 3, t.TempDir(), "{mode: filesystem}")
			return front
		},
		"redis": func(t *testing.T) string {
			front, _ := startReplicas(t, 3, t.TempDir(), redis(t))
			return front
		},
		"s3+redis": func(t *testing.T) string {
			storage, coordination := s3Storage(startS3(t)), redis(t)
			front, _ := startConfigured(t, []string{storageConfig(storage, coordination), storageConfig(storage, coordination), storageConfig(storage, coordination)})
			return front
		},
	}
}

// Of 50 clients racing, through a round-robin front before 3 replicas on
// one storage, to create one immutable tag with 50 different manifests,
// exactly one gets 201 and the tag names its manifest; the others get 403
// DENIED. Ten runs, a fresh tag each. The manifest the tag names cannot
// be deleted.
func TestReplicasOneWinner(t *testing.T) {
	for name, start := range replicaSetups() {
		t.Run(name, func(t *testing.T) {
			race(t, newRClient(t, start(t), "race/app"), 50, 10)
		})
	}
}

// Twenty clients append a signature each to one cosign .sig tag, through
// 3 replicas: each reads the tag, PUTs what it holds plus its own
// signature, and on 403 (another append came first) reads again. The
// final manifest holds all 20.
func TestReplicasAppendOnly(t *testing.T) {
	for name, start := range replicaSetups() {
		t.Run(name, func(t *testing.T) {
			front := start(t)
			c := newRClient(t, front, "race/app")
			config := c.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
			subject := digest.FromString("the signed version")
			tag := subject.Algorithm().String() + "-" + subject.Encoded() + ".sig"
			const signers = 20
			sigs := make([]ocispec.Descriptor, signers)
			for i := range sigs {
				sigs[i] = c.blob("application/vnd.dev.cosign.simplesigning.v1+json", fmt.Appendf(nil, `{"critical":{"signer":%d}}`, i))
				sigs[i].Annotations = map[string]string{"dev.cosignproject.cosign/signature": fmt.Sprintf("sig-%d", i)}
			}
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range signers {
				wg.Go(func() {
					<-start
					for attempt := 0; attempt < 200; attempt++ {
						var layers []ocispec.Descriptor
						switch st, b, _ := c.get(tag); st {
						case http.StatusOK:
							var m ocispec.Manifest
							if err := json.Unmarshal(b, &m); err != nil {
								t.Error(err)
								return
							}
							layers = m.Layers
						case http.StatusNotFound:
						default:
							t.Errorf("signer %d: read %s: %d %s", i, tag, st, b)
							return
						}
						switch st, b := c.put(context.Background(), tag, manifestJSON(config, append(layers, sigs[i]), nil, nil)); {
						case st == http.StatusCreated:
							return
						case st == http.StatusForbidden && errCode(b) == "DENIED":
						default:
							t.Errorf("signer %d: %d %s", i, st, b)
							return
						}
					}
					t.Errorf("signer %d: no append in 200 attempts", i)
				})
			}
			close(start)
			wg.Wait()
			st, b, _ := c.get(tag)
			var m ocispec.Manifest
			if st != http.StatusOK || json.Unmarshal(b, &m) != nil {
				t.Fatalf("%s: %d %s", tag, st, b)
			}
			have := map[string]bool{}
			for _, l := range m.Layers {
				have[l.Annotations["dev.cosignproject.cosign/signature"]] = true
			}
			for i := range signers {
				if !have[fmt.Sprintf("sig-%d", i)] {
					t.Errorf("signature %d lost; the tag holds %d layers", i, len(m.Layers))
				}
			}
		})
	}
}

// Fifty referrers of one subject PUT at once through 3 replicas are all
// listed by the referrers API.
func TestReplicasReferrers(t *testing.T) {
	for name, start := range replicaSetups() {
		t.Run(name, func(t *testing.T) {
			front := start(t)
			c := newRClient(t, front, "race/app")
			config := c.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
			subjectJSON := manifestJSON(config, nil, nil, map[string]string{"what": "subject"})
			if st, b := c.put(context.Background(), "2.0.0", subjectJSON); st != http.StatusCreated {
				t.Fatalf("subject: %d %s", st, b)
			}
			subject := ocispec.Descriptor{MediaType: ocispec.MediaTypeImageManifest, Digest: digest.FromBytes(subjectJSON), Size: int64(len(subjectJSON))}
			const n = 50
			start := make(chan struct{})
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					<-start
					m := manifestJSON(config, nil, &subject, map[string]string{"n": fmt.Sprint(i)})
					if st, b := c.put(context.Background(), digest.FromBytes(m).String(), m); st != http.StatusCreated {
						t.Errorf("referrer %d: %d %s", i, st, b)
					}
				})
			}
			close(start)
			wg.Wait()
			st, b, _ := c.send(context.Background(), http.MethodGet, c.url("referrers", subject.Digest.String()), "", nil)
			var idx ocispec.Index
			if st != http.StatusOK || json.Unmarshal(b, &idx) != nil {
				t.Fatalf("referrers: %d %s", st, b)
			}
			if len(idx.Manifests) != n {
				t.Errorf("%d referrers listed, want %d", len(idx.Manifests), n)
			}
		})
	}
}

// missingService skips the test for a service that is not installed, or
// fails it when OCIWF_REQUIRE_SERVICES=1.
func missingService(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
		t.Fatal(why + " and OCIWF_REQUIRE_SERVICES=1")
	}
	t.Skip(why)
}

// startRedis starts a real redis-server on a free loopback port, without
// persistence, and stops it when the test ends; it returns its address
// and the command, to kill it early. Without redis-server the test is
// skipped, unless OCIWF_REQUIRE_SERVICES=1.
func startRedis(t testing.TB) (string, *exec.Cmd) {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		missingService(t, "redis-server is not installed (scripts/services.sh installs it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(bin, "--port", fmt.Sprint(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", t.TempDir())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	ready := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(out)
		said := false
		for sc.Scan() {
			if !said && strings.Contains(sc.Text(), "Ready to accept connections") {
				said = true
				ready <- true
			}
		}
		if !said {
			ready <- false
		}
	}()
	if !<-ready {
		t.Fatal("redis-server exited before it was ready")
	}
	return fmt.Sprintf("127.0.0.1:%d", port), cmd
}

// With Redis gone, a protected write fails closed with 503 UNAVAILABLE and
// reads go on.
func TestReplicasRedisDown(t *testing.T) {
	addr, redisCmd := startRedis(t)
	front, _ := startReplicas(t, 3, t.TempDir(), fmt.Sprintf("{mode: redis, redis: {addr: %q, lease: 3s}, wait: 2s}", addr))
	c := newRClient(t, front, "down/app")
	config := c.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
	first := manifestJSON(config, nil, nil, map[string]string{"v": "1"})
	if st, b := c.put(context.Background(), "1.0.0", first); st != http.StatusCreated {
		t.Fatalf("before: %d %s", st, b)
	}
	if err := redisCmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = redisCmd.Wait()
	for i := range 3 { // every replica
		st, b := c.put(context.Background(), "1.0.1", manifestJSON(config, nil, nil, map[string]string{"v": "2", "i": fmt.Sprint(i)}))
		if st != http.StatusServiceUnavailable || errCode(b) != "UNAVAILABLE" {
			t.Errorf("protected PUT with Redis down: %d %s, want 503 UNAVAILABLE", st, b)
		}
		if st, _, got := c.get("1.0.0"); st != http.StatusOK || got != digest.FromBytes(first).String() {
			t.Errorf("GET with Redis down: %d %s", st, got)
		}
	}
	if st, _, _ := c.get("1.0.1"); st != http.StatusNotFound {
		t.Errorf("the refused tag: %d, want 404", st)
	}
	// A mutable tag takes no lock: it is set and deleted.
	if st, b := c.put(context.Background(), "latest", first); st != http.StatusCreated {
		t.Errorf("mutable PUT with Redis down: %d %s", st, b)
	}
	if st, b, _ := c.send(context.Background(), http.MethodDelete, c.url("manifests", "latest"), "", nil); st != http.StatusAccepted {
		t.Errorf("mutable tag DELETE with Redis down: %d %s", st, b)
	}
	// A delete by digest takes the repository's lock: refused as a
	// protected PUT is, not a 500.
	for _, kind := range []string{"manifests", "blobs"} {
		dgst := digest.FromBytes(first)
		if kind == "blobs" {
			dgst = config.Digest
		}
		st, b, _ := c.send(context.Background(), http.MethodDelete, c.url(kind, dgst.String()), "", nil)
		if st != http.StatusServiceUnavailable || errCode(b) != "UNAVAILABLE" || !strings.Contains(string(b), "coordination") || !strings.Contains(string(b), "the write was not made") {
			t.Errorf("DELETE %s by digest with Redis down: %d %s, want 503 UNAVAILABLE naming the cause", kind, st, b)
		}
	}
}
