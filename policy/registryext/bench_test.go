package registryext_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"ociwf.dev/policy/registryext"
	"ociwf.dev/policy/registrytest"
)

// benchClients is how many clients PUT and GET manifests at once.
const benchClients = 32

// benchPerClient is how many manifests each client PUTs (and GETs) per
// server and round; OCIWF_BENCH_PER_CLIENT overrides it.
func benchPerClient(b *testing.B) int {
	if s := os.Getenv("OCIWF_BENCH_PER_CLIENT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			b.Fatalf("OCIWF_BENCH_PER_CLIENT=%q: want a positive number", s)
		}
		return n
	}
	return 50
}

// BenchmarkRegistry compares manifest PUT and GET latency through ociwf's
// registry (Distribution with ociwf's repository middleware and request wrapper)
// against plain Distribution configured the same way (filesystem storage
// under a temporary directory, delete enabled, upload purging off), both
// served by net/http on loopback in this process. Each of b.N rounds has
// 32 clients sharing one keep-alive http.Client PUT distinct small OCI
// manifests to distinct semantic-version tags (immutable under ociwf's
// default rules, so its lock, tag lookup and tag run on every PUT; none is
// denied), to one server and then the other, and then GET them back by tag
// from one and then the other; the order alternates by round so that
// machine noise touches both. It reports each server's p50 and p99 over
// the requests of all rounds together (a round's p99 is a handful of
// requests, mostly fsync stalls, too few to compare), and their ours/plain
// ratios, as metrics and (for b.N > 1: -benchtime 7x, say) as a table;
// with -v, each round's figures too. /audit is the same with ociwf's audit
// log on. OCIWF_BENCH_PER_CLIENT sets the PUTs (and GETs) per client,
// server and round (default 50).
func BenchmarkRegistry(b *testing.B) {
	b.Run("default", func(b *testing.B) { benchRegistry(b, false) })
	b.Run("audit", func(b *testing.B) { benchRegistry(b, true) })
}

func benchRegistry(b *testing.B, auditLog bool) {
	perClient := benchPerClient(b)
	cfg := registryext.Config{Root: b.TempDir()}
	if auditLog {
		cfg.AuditLog = filepath.Join(b.TempDir(), "audit.jsonl")
	}
	ours := registrytest.Start(b, cfg).Addr() // silences Distribution's logs first
	plain := registrytest.StartPlain(b, b.TempDir())

	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * benchClients
	tr.MaxIdleConnsPerHost = 2 * benchClients
	hc := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)

	targets := []*benchTarget{{name: "plain", host: plain}, {name: "ours", host: ours}}
	for _, t := range targets {
		t.setup(b, hc)
		// Warm up: open the connections, fill the caches.
		if _, err := t.put(hc, -1, 5); err != nil {
			b.Fatal(err)
		}
		if _, err := t.get(hc, -1, 5); err != nil {
			b.Fatal(err)
		}
	}

	var perRound [2][2][]benchFigures // server, op (PUT, GET)
	var pooled [2][2][]time.Duration  // every request, by server and op
	b.ResetTimer()
	for r := 0; r < b.N; r++ {
		order := []int{0, 1}
		if r%2 == 1 {
			order = []int{1, 0}
		}
		for op := range 2 {
			for _, i := range order {
				var lat []time.Duration
				var err error
				if op == 0 {
					lat, err = targets[i].put(hc, r, perClient)
				} else {
					lat, err = targets[i].get(hc, r, perClient)
				}
				if err != nil {
					b.Fatal(err)
				}
				perRound[i][op] = append(perRound[i][op], benchFiguresOf(lat))
				pooled[i][op] = append(pooled[i][op], lat...)
			}
		}
		if testing.Verbose() {
			b.Logf("round %d: PUT p50/p99 plain %v/%v ours %v/%v; GET plain %v/%v ours %v/%v", r,
				perRound[0][0][r].p50, perRound[0][0][r].p99, perRound[1][0][r].p50, perRound[1][0][r].p99,
				perRound[0][1][r].p50, perRound[0][1][r].p99, perRound[1][1][r].p50, perRound[1][1][r].p99)
		}
	}
	b.StopTimer()

	var table strings.Builder
	mode := "default"
	if auditLog {
		mode = "audit log on"
	}
	fmt.Fprintf(&table, "registry latency, %s: %d clients, %d rounds of %d PUTs + %d GETs per server (percentiles over all rounds)\n",
		mode, benchClients, b.N, benchClients*perClient, benchClients*perClient)
	fmt.Fprintf(&table, "  %-4s %12s %12s %12s %12s %12s %12s\n", "op", "plain p50", "ours p50", "ratio p50", "plain p99", "ours p99", "ratio p99")
	for op, name := range []string{"put", "get"} {
		pl, ou := benchFiguresOf(pooled[0][op]), benchFiguresOf(pooled[1][op])
		p50p, p50o, p99p, p99o := pl.p50, ou.p50, pl.p99, ou.p99
		ratio50, ratio99 := float64(p50o)/float64(p50p), float64(p99o)/float64(p99p)
		fmt.Fprintf(&table, "  %-4s %12s %12s %12.3f %12s %12s %12.3f\n", strings.ToUpper(name),
			p50p.Round(time.Microsecond), p50o.Round(time.Microsecond), ratio50,
			p99p.Round(time.Microsecond), p99o.Round(time.Microsecond), ratio99)
		b.ReportMetric(benchUS(p50p), name+"-p50-plain-us")
		b.ReportMetric(benchUS(p50o), name+"-p50-ours-us")
		b.ReportMetric(benchUS(p99p), name+"-p99-plain-us")
		b.ReportMetric(benchUS(p99o), name+"-p99-ours-us")
		b.ReportMetric(ratio50, name+"-p50-ratio")
		b.ReportMetric(ratio99, name+"-p99-ratio")
	}
	// testing runs a benchmark once with b.N = 1 before the -benchtime
	// run; print the table of the run that counts.
	if b.N > 1 {
		b.Log("\n" + table.String())
	}
}

// benchTarget is one server under test: each client has a repository of
// its own there, with a config and a layer blob every manifest names.
type benchTarget struct {
	name          string
	host          string
	config, layer ocispec.Descriptor
}

func (t *benchTarget) repo(client int) string { return fmt.Sprintf("bench/client-%02d", client) }

// setup pushes the blobs to every client's repository, outside timing.
func (t *benchTarget) setup(b *testing.B, hc *http.Client) {
	b.Helper()
	config := []byte(`{"architecture":"amd64","os":"linux"}`)
	layer := bytes.Repeat([]byte("ociwf bench layer\n"), 64)
	t.config = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageConfig, Digest: digest.FromBytes(config), Size: int64(len(config))}
	t.layer = ocispec.Descriptor{MediaType: ocispec.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer))}
	err := t.each(func(c int) error {
		for _, blob := range [][]byte{config, layer} {
			if err := t.pushBlob(hc, c, blob); err != nil {
				return fmt.Errorf("%s: push blob: %w", t.name, err)
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
}

// pushBlob uploads blob to a client's repository: POST to open an upload,
// PUT its content to the location returned.
func (t *benchTarget) pushBlob(hc *http.Client, client int, blob []byte) error {
	base := &url.URL{Scheme: "http", Host: t.host}
	req, err := http.NewRequest(http.MethodPost, base.JoinPath("v2", t.repo(client), "blobs", "uploads").String()+"/", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("open upload: status %d", resp.StatusCode)
	}
	loc, err := base.Parse(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	q := loc.Query()
	q.Set("digest", digest.FromBytes(blob).String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequest(http.MethodPut, loc.String(), bytes.NewReader(blob))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	return benchSend(hc, req, http.StatusCreated)
}

// each runs f for every client at once and returns the first error.
func (t *benchTarget) each(f func(client int) error) error {
	var wg sync.WaitGroup
	errs := make([]error, benchClients)
	for c := range benchClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[c] = f(c)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// tag is the semantic-version tag client c PUTs its i-th manifest of a
// round to: round.client.i (round -1 is the warm-up).
func benchTag(round, c, i int) string {
	if round < 0 {
		return fmt.Sprintf("0.0.%d-warmup.%d", i, c)
	}
	return fmt.Sprintf("%d.%d.%d", round+1, c, i)
}

// put has every client PUT n distinct manifests to distinct tags
// (benchTag) and returns the latencies.
func (t *benchTarget) put(hc *http.Client, round, n int) ([]time.Duration, error) {
	lat := make([][]time.Duration, benchClients)
	err := t.each(func(c int) error {
		for i := range n {
			m := ocispec.Manifest{MediaType: ocispec.MediaTypeImageManifest, Config: t.config,
				Layers:      []ocispec.Descriptor{t.layer},
				Annotations: map[string]string{"dev.ociwf.bench": fmt.Sprintf("%s %d %d %d", t.name, round, c, i)}}
			m.SchemaVersion = 2
			body, err := json.Marshal(m)
			if err != nil {
				return err
			}
			req, err := http.NewRequest(http.MethodPut, t.manifestURL(c, benchTag(round, c, i)), bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", ocispec.MediaTypeImageManifest)
			start := time.Now()
			if err := benchSend(hc, req, http.StatusCreated); err != nil {
				return fmt.Errorf("%s: PUT %s: %w", t.name, benchTag(round, c, i), err)
			}
			lat[c] = append(lat[c], time.Since(start))
		}
		return nil
	})
	return slices.Concat(lat...), err
}

// get has every client GET back by tag the manifests put PUT and returns the
// latencies.
func (t *benchTarget) get(hc *http.Client, round, n int) ([]time.Duration, error) {
	lat := make([][]time.Duration, benchClients)
	err := t.each(func(c int) error {
		for i := range n {
			req, err := http.NewRequest(http.MethodGet, t.manifestURL(c, benchTag(round, c, i)), nil)
			if err != nil {
				return err
			}
			req.Header.Set("Accept", ocispec.MediaTypeImageManifest)
			start := time.Now()
			if err := benchSend(hc, req, http.StatusOK); err != nil {
				return fmt.Errorf("%s: GET %s: %w", t.name, benchTag(round, c, i), err)
			}
			lat[c] = append(lat[c], time.Since(start))
		}
		return nil
	})
	return slices.Concat(lat...), err
}

func (t *benchTarget) manifestURL(client int, tag string) string {
	return fmt.Sprintf("http://%s/v2/%s/manifests/%s", t.host, t.repo(client), tag)
}

// benchSend does req, reads the whole response and checks its status.
func benchSend(hc *http.Client, req *http.Request, want int) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("status %d, want %d: %s", resp.StatusCode, want, body)
	}
	return nil
}

// benchFigures are the percentiles of one server's latencies for one
// operation in one round.
type benchFigures struct{ p50, p99 time.Duration }

func benchFiguresOf(lat []time.Duration) benchFigures {
	s := slices.Clone(lat)
	slices.Sort(s)
	return benchFigures{p50: benchPercentile(s, 0.50), p99: benchPercentile(s, 0.99)}
}

// benchPercentile is the nearest-rank percentile of sorted latencies.
func benchPercentile(sorted []time.Duration, p float64) time.Duration {
	k := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(k, 0)]
}

func benchUS(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
