package registryext_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// BenchmarkReplicas measures manifest PUT and GET latency at 32 clients
// through a round-robin front (httputil.ReverseProxy on loopback) before 3
// replicas on one filesystem storage against the same front before 1
// replica, both coordinating the same way: /filesystem with flock(2)
// locks, /redis with leases in a redis-server the benchmark starts. The
// requests, rounds and percentiles are BenchmarkRegistry's (every PUT is
// to a new immutable tag, so it takes its repository's and its tag's
// locks); the ratios are three/one. All replicas run in this process on
// this machine's cores: the figures show what coordination costs, not
// what more machines would add.
func BenchmarkReplicas(b *testing.B) {
	b.Run("filesystem", func(b *testing.B) { benchReplicas(b, func(testing.TB) string { return "{mode: filesystem}" }) })
	b.Run("redis", func(b *testing.B) {
		benchReplicas(b, func(tb testing.TB) string {
			addr, _ := startRedis(tb)
			return fmt.Sprintf("{mode: redis, redis: {addr: %q}}", addr)
		})
	})
}

func benchReplicas(b *testing.B, coordination func(testing.TB) string) {
	perClient := benchPerClient(b)
	co := coordination(b)
	one, _ := startReplicas(b, 1, b.TempDir(), co)
	three, _ := startReplicas(b, 3, b.TempDir(), co)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = 4 * benchClients
	tr.MaxIdleConnsPerHost = 2 * benchClients
	hc := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)

	targets := []*benchTarget{{name: "one", host: one}, {name: "three", host: three}}
	for _, t := range targets {
		t.setup(b, hc)
		if _, err := t.put(hc, -1, 5); err != nil {
			b.Fatal(err)
		}
		if _, err := t.get(hc, -1, 5); err != nil {
			b.Fatal(err)
		}
	}
	var pooled [2][2][]time.Duration // target, op (PUT, GET)
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
				pooled[i][op] = append(pooled[i][op], lat...)
			}
		}
	}
	b.StopTimer()
	var table strings.Builder
	fmt.Fprintf(&table, "replicas, coordination %s: %d clients, %d rounds of %d PUTs + %d GETs per setup (percentiles over all rounds)\n",
		co, benchClients, b.N, benchClients*perClient, benchClients*perClient)
	fmt.Fprintf(&table, "  %-4s %12s %12s %12s %12s %12s %12s\n", "op", "1 p50", "3 p50", "ratio p50", "1 p99", "3 p99", "ratio p99")
	for op, name := range []string{"put", "get"} {
		o, t := benchFiguresOf(pooled[0][op]), benchFiguresOf(pooled[1][op])
		r50, r99 := float64(t.p50)/float64(o.p50), float64(t.p99)/float64(o.p99)
		fmt.Fprintf(&table, "  %-4s %12s %12s %12.3f %12s %12s %12.3f\n", strings.ToUpper(name),
			o.p50.Round(time.Microsecond), t.p50.Round(time.Microsecond), r50, o.p99.Round(time.Microsecond), t.p99.Round(time.Microsecond), r99)
		b.ReportMetric(benchUS(o.p50), name+"-p50-one-us")
		b.ReportMetric(benchUS(t.p50), name+"-p50-three-us")
		b.ReportMetric(benchUS(o.p99), name+"-p99-one-us")
		b.ReportMetric(benchUS(t.p99), name+"-p99-three-us")
		b.ReportMetric(r50, name+"-p50-ratio")
		b.ReportMetric(r99, name+"-p99-ratio")
	}
	if b.N > 1 {
		b.Log("\n" + table.String())
	}
}
