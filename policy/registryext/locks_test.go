package registryext_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/distribution/v3/configuration"
	storagedriver "github.com/distribution/distribution/v3/registry/storage/driver"
	"github.com/distribution/distribution/v3/registry/storage/driver/factory"
	"github.com/distribution/distribution/v3/registry/storage/driver/filesystem"
	"github.com/opencontainers/go-digest"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// gatedDriverName is a filesystem storage driver whose reads of chosen
// paths wait until the test lets them on, so a test can hold a request at
// a known point.
const gatedDriverName = "ociwf-test-gated"

func init() { factory.Register(gatedDriverName, gatedFactory{}) }

type gatedFactory struct{}

func (gatedFactory) Create(ctx context.Context, parameters map[string]any) (storagedriver.StorageDriver, error) {
	d, err := filesystem.FromParameters(parameters)
	if err != nil {
		return nil, err
	}
	return &gatedDriver{StorageDriver: d, g: parameters["gate"].(*gate)}, nil
}

// gate holds reads of paths containing hold (once armed) until released,
// and records reads of paths containing watch meanwhile.
type gate struct {
	mu          sync.Mutex
	hold, watch string
	entered     chan struct{} // closed when the first held read arrives
	release     chan struct{}
	watched     []string // paths with watch read while a read was held
	holding     bool
}

func newGate() *gate { return &gate{entered: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) arm(hold, watch string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hold, g.watch = hold, watch
}

func (g *gate) pass(ctx context.Context, path string) {
	g.mu.Lock()
	if g.holding && g.watch != "" && strings.Contains(path, g.watch) {
		g.watched = append(g.watched, path)
	}
	held := g.hold != "" && strings.Contains(path, g.hold)
	if held && !g.holding {
		g.holding = true
		close(g.entered)
	}
	g.mu.Unlock()
	if held {
		select {
		case <-g.release:
		case <-ctx.Done():
		}
	}
}

// open lets held reads on and returns the watched paths read meanwhile.
func (g *gate) open() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	select {
	case <-g.release:
	default:
		close(g.release)
	}
	g.hold, g.holding = "", false
	return g.watched
}

type gatedDriver struct {
	storagedriver.StorageDriver
	g *gate
}

func (d *gatedDriver) GetContent(ctx context.Context, path string) ([]byte, error) {
	d.g.pass(ctx, path)
	return d.StorageDriver.GetContent(ctx, path)
}

func (d *gatedDriver) Reader(ctx context.Context, path string, offset int64) (io.ReadCloser, error) {
	d.g.pass(ctx, path)
	return d.StorageDriver.Reader(ctx, path, offset)
}

func (d *gatedDriver) Stat(ctx context.Context, path string) (storagedriver.FileInfo, error) {
	d.g.pass(ctx, path)
	return d.StorageDriver.Stat(ctx, path)
}

func (d *gatedDriver) List(ctx context.Context, path string) ([]string, error) {
	d.g.pass(ctx, path)
	return d.StorageDriver.List(ctx, path)
}

// startGated starts a registry on gated filesystem storage.
func startGated(t *testing.T) (*registryext.Server, *gate) {
	t.Helper()
	g := newGate()
	secret := make([]byte, 16)
	rand.Read(secret)
	conf := &configuration.Configuration{Version: "0.1", Storage: configuration.Storage{
		gatedDriverName: configuration.Parameters{"rootdirectory": t.TempDir(), "gate": g},
		"delete":        configuration.Parameters{"enabled": true},
		"maintenance":   configuration.Parameters{"uploadpurging": map[any]any{"enabled": false}},
	}}
	conf.HTTP.Secret = hex.EncodeToString(secret)
	srv := registrytest.Start(t, registryext.Config{Distribution: conf})
	t.Cleanup(func() { g.open() }) // before the registry stops: it waits for held requests
	return srv, g
}

// waitEntered waits for the gate to hold a read.
func waitEntered(t *testing.T, g *gate, what string) {
	t.Helper()
	select {
	case <-g.entered:
	case <-time.After(time.Minute):
		t.Fatalf("%s never reached the gate", what)
	}
}

// async runs a request in the background.
func async(c *client, method, path string, body []byte) <-chan response {
	ch := make(chan response, 1)
	go func() { ch <- c.do(method, path, body) }()
	return ch
}

// A delete in one repository, held in its protection check, does not hold
// up a protected push to another.
func TestDeleteDoesNotBlockOtherRepositories(t *testing.T) {
	srv, g := startGated(t)
	x, y := newClient(t, srv.Addr(), "locks/x"), newClient(t, srv.Addr(), "locks/y")
	for i := 0; i < 20; i++ {
		expect(t, "protected tag in x", x.put("1.0."+string(rune('0'+i%10))+string(rune('a'+i/10)), x.manifest("x", string(rune('a'+i)))), http.StatusCreated, "")
	}
	loose := x.blob("loose")
	victim := y.manifest("victim")

	g.arm("/repositories/locks/x/_manifests/tags", "")
	del := async(x, http.MethodDelete, "/blobs/"+loose.Digest.String(), nil)
	waitEntered(t, g, "the delete in x")

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, y.base+"/manifests/4.0.0", strings.NewReader(string(victim)))
	req.Header.Set("Content-Type", childType(victim))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("a protected PUT in y while a delete in x is held: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("PUT y:4.0.0: %d", resp.StatusCode)
	}
	g.open()
	expect(t, "the delete in x", <-del, http.StatusAccepted, "")
}

// A protected PUT racing a delete cannot tag content the delete removes:
// while the delete checks, the PUT waits for it.
func TestDeleteRacingProtectedPut(t *testing.T) {
	srv, g := startGated(t)
	c := newClient(t, srv.Addr(), "locks/race")
	other := c.manifest("other")
	expect(t, "protected tag", c.put("0.9.0", other), http.StatusCreated, "")
	target := c.manifest("only in the target")
	expect(t, "the target, untagged", c.put(digest.FromBytes(target).String(), target), http.StatusCreated, "")
	layer := digest.FromString("only in the target")

	// Hold the delete of the target's layer while it walks 0.9.0.
	g.arm("/_manifests/revisions/sha256/"+digest.FromBytes(other).Encoded(), "/_manifests/tags/1.0.0")
	del := async(c, http.MethodDelete, "/blobs/"+layer.String(), nil)
	waitEntered(t, g, "the delete")

	sent := make(chan struct{})
	put := make(chan int, 1)
	go func() {
		ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{WroteRequest: func(httptrace.WroteRequestInfo) { close(sent) }})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPut, c.base+"/manifests/1.0.0", strings.NewReader(string(target)))
		req.Header.Set("Content-Type", childType(target))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			put <- 0
			return
		}
		resp.Body.Close()
		put <- resp.StatusCode
	}()
	<-sent
	if watched := g.open(); len(watched) > 0 {
		t.Fatalf("the PUT read %v while the delete checked", watched)
	}
	expect(t, "the delete", <-del, http.StatusAccepted, "")
	status := <-put
	tagged := c.do(http.MethodGet, "/manifests/1.0.0", nil).status == http.StatusOK
	present := c.do(http.MethodGet, "/blobs/"+layer.String(), nil).status == http.StatusOK
	if tagged && !present {
		t.Fatalf("PUT %d tagged 1.0.0 onto a manifest whose layer the delete removed", status)
	}
}

// Deletes of content a repository does not hold answer 404 at once.
func TestDeleteUnknown(t *testing.T) {
	srv, g := startGated(t)
	c := newClient(t, srv.Addr(), "locks/unknown")
	expect(t, "protected tag", c.put("1.0.0", c.manifest("a")), http.StatusCreated, "")
	g.arm("/repositories/locks/unknown/_manifests/tags", "")
	missing := digest.FromString("missing")
	for _, tc := range []struct{ path, code string }{{"/blobs/", "BLOB_UNKNOWN"}, {"/manifests/", "MANIFEST_UNKNOWN"}} {
		select {
		case r := <-async(c, http.MethodDelete, tc.path+missing.String(), nil):
			expect(t, "delete missing "+tc.path, r, http.StatusNotFound, tc.code)
		case <-g.entered:
			t.Fatalf("a delete of a missing %s walked the tags", tc.path)
		}
	}
}
