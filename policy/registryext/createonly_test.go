package registryext_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// startS3 starts a real S3 server (gofakes3, built by scripts/tools.sh,
// which honours If-None-Match and If-Match on PUT) on a free loopback
// port with an empty bucket "ociwf", and returns its URL. Without it the
// test is skipped, unless OCIWF_REQUIRE_SERVICES=1.
func startS3(t testing.TB) string {
	t.Helper()
	bin, err := filepath.Abs("../../.tools/bin/gofakes3")
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		missingService(t, "gofakes3 is not built (scripts/tools.sh builds it)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "-backend", "memory", "-host", addr, "-initialbucket", "ociwf", "-quiet")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gofakes3 did not listen on %s: %s", addr, stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return "http://" + addr
}

// s3Storage is the storage section of Distribution's S3 driver for the
// bucket "ociwf" at endpoint.
func s3Storage(endpoint string) string {
	return fmt.Sprintf(`s3:
    region: us-east-1
    bucket: ociwf
    regionendpoint: %s
    forcepathstyle: true
    secure: false
    accesskey: ociwf
    secretkey: ociwf
    rootdirectory: /registry`, endpoint)
}

// race has racers PUT a different manifest each to one new immutable tag
// of c's repository, runs times, and checks that exactly one gets 201 each
// time and the others 403 DENIED, that the tag names the winner's
// manifest and that it cannot be deleted; then that identical content
// from every racer all succeeds.
func race(t *testing.T, c *rclient, racers, runs int) {
	t.Helper()
	config := c.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
	for run := range runs {
		tag := fmt.Sprintf("1.0.%d", run)
		manifests := make([][]byte, racers)
		for i := range manifests {
			manifests[i] = manifestJSON(config, nil, nil, map[string]string{"racer": fmt.Sprint(i), "run": fmt.Sprint(run)})
		}
		status := make([]int, racers)
		bodies := make([][]byte, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				status[i], bodies[i] = c.put(context.Background(), tag, manifests[i])
			})
		}
		close(start)
		wg.Wait()
		winner := -1
		for i, st := range status {
			switch {
			case st == http.StatusCreated && winner < 0:
				winner = i
			case st == http.StatusCreated:
				t.Errorf("run %d: racers %d and %d both created %s", run, winner, i, tag)
			case st == http.StatusForbidden && errCode(bodies[i]) == "DENIED":
			default:
				t.Errorf("run %d: racer %d: %d %s", run, i, st, bodies[i])
			}
		}
		if winner < 0 {
			t.Fatalf("run %d: no racer created %s", run, tag)
		}
		won := digest.FromBytes(manifests[winner]).String()
		if st, _, got := c.get(tag); st != http.StatusOK || got != won {
			t.Fatalf("run %d: %s is %d %s, want the winner's", run, tag, st, got)
		}
		if st, b, _ := c.send(context.Background(), http.MethodDelete, c.url("manifests", won), "", nil); st != http.StatusForbidden {
			t.Errorf("run %d: delete of the winner: %d %s, want 403", run, st, b)
		}
	}
	same := manifestJSON(config, nil, nil, map[string]string{"all": "alike"})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			if st, b := c.put(context.Background(), "2.0.0", same); st != http.StatusCreated {
				t.Errorf("identical racer %d: %d %s", i, st, b)
			}
		})
	}
	wg.Wait()
}

// Three replicas whose locks order nothing across them (each has its own
// lock directory: a misconfiguration) still let exactly one of 50 racers
// create an immutable tag, because the storage creates the tag's link
// only once: link(2) on a filesystem, PUT If-None-Match: * on S3.
func TestCreateOnlyTagLinks(t *testing.T) {
	storages := map[string]func(t *testing.T) string{
		"filesystem": func(t *testing.T) string {
			return fmt.Sprintf("filesystem:\n    rootdirectory: %s", t.TempDir())
		},
		"s3": func(t *testing.T) string { return s3Storage(startS3(t)) },
	}
	for name, storage := range storages {
		t.Run(name, func(t *testing.T) {
			st := storage(t)
			var srcs []string
			for range 3 {
				srcs = append(srcs, storageConfig(st, fmt.Sprintf("{mode: filesystem, dir: %s}", t.TempDir())))
			}
			front, _ := startConfigured(t, srcs)
			race(t, newRClient(t, front, "links/app"), 50, 5)
		})
	}
}

// An S3 endpoint that ignores If-None-Match (here: a proxy that drops the
// header) is found at start: the registry says so in its log and serves,
// with the coordination locks alone guarding immutable tags.
func TestCreateOnlyS3WithoutConditionalWrites(t *testing.T) {
	target, err := url.Parse(startS3(t))
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	strip := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.Header.Del("If-None-Match")
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(strip.Close)
	cfg, err := registryext.ParseConfig("s3.yaml", []byte(storageConfig(s3Storage(strip.URL), "{mode: inprocess}")))
	if err != nil {
		t.Fatal(err)
	}
	var logs syncBuffer
	cfg.Logger = slog.New(slog.NewJSONHandler(&logs, nil))
	srv := registrytest.Start(t, cfg)
	found := false
	for _, rec := range logs.records(t, "storage: S3 answered a second create-only PUT of one key with success, so it does not honour If-None-Match; immutable tags are held by the coordination locks alone") {
		found = found || rec["bucket"] == "ociwf"
	}
	if !found {
		t.Error("no warning that the storage ignores If-None-Match")
	}
	race(t, newRClient(t, srv.Addr(), "nocond/app"), 20, 2)
}

// A registry in coordination mode inprocess has its filesystem root to
// itself: it does not start beside replicas that coordinate (its locks
// would order none of their writes), they do not start beside it, and gc
// does not run while any registry serves the root.
func TestServingLock(t *testing.T) {
	root := t.TempDir()
	ctx := context.Background()
	start := func(mode string) (*registryext.Server, error) {
		return registryext.New(ctx, registryext.Config{Root: root, Addr: "127.0.0.1:0", Coordination: registryext.Coordination{Mode: mode}})
	}
	shared, err := start(registryext.CoordinationFilesystem)
	if err != nil {
		t.Fatal(err)
	}
	shared2, err := start(registryext.CoordinationFilesystem)
	if err != nil {
		t.Fatalf("a second filesystem replica: %v", err)
	}
	if _, err := start(registryext.CoordinationInProcess); !errors.Is(err, registryext.ErrRootInUse) {
		t.Errorf("inprocess beside filesystem replicas: %v, want ErrRootInUse", err)
	}
	if _, err := registryext.GarbageCollect(ctx, registryext.Config{Root: root}, registryext.GCOptions{}); !errors.Is(err, registryext.ErrRootInUse) {
		t.Errorf("gc while replicas serve: %v, want ErrRootInUse", err)
	}
	for _, s := range []*registryext.Server{shared, shared2} {
		if err := s.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
	}
	alone, err := start(registryext.CoordinationInProcess)
	if err != nil {
		t.Fatalf("inprocess once the replicas stopped: %v", err)
	}
	if _, err := start(registryext.CoordinationFilesystem); !errors.Is(err, registryext.ErrRootInUse) {
		t.Errorf("a filesystem replica beside an inprocess registry: %v, want ErrRootInUse", err)
	}
	if _, err := start(registryext.CoordinationInProcess); !errors.Is(err, registryext.ErrRootInUse) {
		t.Errorf("two inprocess registries: %v, want ErrRootInUse", err)
	}
	if err := alone.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := registryext.GarbageCollect(ctx, registryext.Config{Root: root}, registryext.GCOptions{DryRun: true}); err != nil {
		t.Errorf("gc once no registry serves: %v", err)
	}
}
