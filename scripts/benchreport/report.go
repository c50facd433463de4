package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// target is one line of the summary table.
type target struct {
	what, measured, ratio, want string
	ok                          bool
	known                       bool
}

func ms(v float64) string {
	if math.IsNaN(v) {
		return "–"
	}
	if v >= 100 {
		return fmt.Sprintf("%.0f ms", v)
	}
	return fmt.Sprintf("%.1f ms", v)
}

func writeReport(b *strings.Builder, r *results, svg string) {
	p := func(format string, a ...any) { fmt.Fprintf(b, format, a...) }
	p("# Benchmarks\n\n")
	p("Written by `scripts/bench.sh` (%s, commit %s); rerun it to refresh this page and\n", r.str("machine", "date"), r.str("machine", "commit"))
	p("[the plot](%s). Every ratio pairs figures measured side by side in this one run:\n", svg)
	p("rounds alternate between ociwf and its peer so that both see the same machine\n")
	p("state, and a ratio is the median of the per-round ratios. Spreads are the 10th to\n")
	p("90th percentile, with the number of runs. Nothing here is asserted by a test.\n\n")

	p("## Machine\n\n| | |\n|---|---|\n")
	for _, k := range []struct{ key, label string }{
		{"cpu", "CPU"}, {"cores", "cores"}, {"memory", "memory"}, {"kernel", "kernel"}, {"go", "Go"},
		{"load_start", "load average at start"}, {"load_end", "load average at end"}, {"duration", "run time"},
	} {
		if v := r.str("machine", k.key); v != "" {
			p("| %s | %s |\n", k.label, v)
		}
	}
	p("\n")

	targets := allTargets(r)
	p("## Targets\n\n| target | measured (median) | ratio | wanted | |\n|---|---|---|---|---|\n")
	for _, t := range targets {
		status := "not measured"
		if t.known {
			status = verdict(t.ok)
		}
		p("| %s | %s | %s | %s | %s |\n", t.what, t.measured, t.ratio, t.want, status)
	}
	p("\n")

	writeStartup(p, r)
	writeProcesses(p, r)
	writeBulkVerify(p, r)
	writeCompile(p, r)
	writeLibrary(p, r)
	writeRegistry(p, r)
	p("## Plot\n\n![compile and bulk-verify scaling](%s)\n", svg)
}

type printer func(format string, a ...any)

// writeSummary is the targets table alone, for the README.
func writeSummary(b *strings.Builder, r *results, md string) {
	fmt.Fprintf(b, "From [%s](%s) (%s, %s cores, %s; rerun `scripts/bench.sh`):\n\n", md, md, r.str("machine", "cpu"), r.str("machine", "cores"), r.str("machine", "date"))
	b.WriteString("| target | measured (median) | ratio | wanted | |\n|---|---|---|---|---|\n")
	for _, t := range allTargets(r) {
		status := "not measured"
		if t.known {
			status = verdict(t.ok)
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", t.what, t.measured, t.ratio, t.want, status)
	}
}

func allTargets(r *results) []target {
	var targets []target
	targets = append(targets, startupTargets(r)...)
	targets = append(targets, processTargets(r)...)
	return append(targets, libraryTargets(r)...)
}

func startupTargets(r *results) []target {
	ours := r.nums("startup", "ociwf version")
	cosign := r.nums("startup", "cosign version")
	rss := r.nums("startup_rss", "ociwf version")
	if len(ours) == 0 {
		return []target{{what: "`ociwf version` start-up"}}
	}
	m, mr := median(ours), median(rss)/1024
	rat := median(ratios(ours, cosign))
	return []target{
		{what: "`ociwf version` wall time", measured: ms(m), want: "≤ 15 ms", ok: m <= 15, known: true},
		{what: "`ociwf version` peak RSS", measured: fmt.Sprintf("%.1f MiB", mr), want: "≤ 40 MiB", ok: mr <= 40, known: true},
		{what: "`ociwf version` / `cosign version`", measured: ms(m) + " / " + ms(median(cosign)), ratio: fmt.Sprintf("%.2f×", rat), want: "≤ 0.50×", ok: rat <= 0.5, known: len(cosign) > 0},
	}
}

func processTargets(r *results) []target {
	var out []target
	pair := func(section, what, want string, limit float64, lower bool) {
		ours, stock := r.nums(section, "ours_ms"), r.nums(section, "stock_ms")
		if len(ours) == 0 || len(stock) == 0 {
			out = append(out, target{what: what, want: want})
			return
		}
		rat := median(ratios(ours, stock))
		t := target{what: what, measured: ms(median(ours)) + " / " + ms(median(stock)), want: want, known: true}
		if lower {
			t.ratio, t.ok = fmt.Sprintf("%.3f×", rat), rat <= limit
		} else {
			t.ratio, t.ok = fmt.Sprintf("%.1f× faster", 1/rat), 1/rat >= limit
		}
		out = append(out, t)
	}
	pair("verify", "`ociwf verify` / stock pipeline", "≤ 0.20×", 0.20, true)
	pair("publish", "`ociwf publish` / stock pipeline", "≤ 0.33×", 1.0/3, true)
	n := r.str("bulk", "workflows")
	pair("bulk", fmt.Sprintf("bulk `ociwf publish` of %s workflows vs %s stock pipelines", orDash(n), orDash(n)), "≥ 8× faster", 8, false)
	// Bulk verify against the stock pipeline's per-version rate.
	stock := r.nums("verify", "stock_ms")
	vps, rss := bulkBest(r)
	if len(stock) > 0 && vps > 0 {
		rate := 1000 / median(stock)
		x := vps / rate
		out = append(out,
			target{what: "`verify --all` 1,000 versions vs stock per-version rate", measured: fmt.Sprintf("%.0f vs %.2f versions/s", vps, rate), ratio: fmt.Sprintf("%.0f×", x), want: "≥ 80×", ok: x >= 80, known: true},
			target{what: "`verify --all` 1,000 versions peak RSS", measured: fmt.Sprintf("%.0f MiB", rss), want: "≤ 128 MiB", ok: rss <= 128, known: true})
	} else {
		out = append(out, target{what: "`verify --all` 1,000 versions vs stock per-version rate", want: "≥ 80×"})
	}
	return out
}

// bulkBest is the best median versions/s over 1,000 versions (any
// concurrency) and the peak RSS at that concurrency.
func bulkBest(r *results) (vps, rss float64) {
	for _, k := range r.order["verify_all"] {
		f := strings.Split(k, "/")
		if len(f) != 3 || f[0] != "vps" || f[1] != "1000" {
			continue
		}
		if v := median(r.nums("verify_all", k)); v > vps {
			vps = v
			rss = maxOf(r.nums("verify_all", "rss/1000/"+f[2]))
		}
	}
	return vps, rss
}

func maxOf(v []float64) float64 {
	m := math.NaN()
	for _, x := range v {
		if math.IsNaN(m) || x > m {
			m = x
		}
	}
	return m
}

func libraryTargets(r *results) []target {
	var out []target
	if o, ok := r.metric("BenchmarkFetchPeer/ociwf", "ns/op"); ok {
		c, _ := r.metric("BenchmarkFetchPeer/cosign", "ns/op")
		rat, okr := r.metric("BenchmarkFetchPeer/interleaved", "ociwf/peer")
		if !okr && c > 0 {
			rat = o / c
		}
		out = append(out, target{what: "`verify.Fetch` / cosign library + oras-go pull", measured: ms(o/1e6) + " / " + ms(c/1e6), ratio: fmt.Sprintf("%.2f×", rat), want: "≤ 0.80×", ok: rat <= 0.8, known: true})
	} else {
		out = append(out, target{what: "`verify.Fetch` / cosign library + oras-go pull", want: "≤ 0.80×"})
	}
	if t, ok := r.metric("BenchmarkCompile10k", "ns/op"); ok {
		bytes, _ := r.metric("BenchmarkCompile10k", "B/op")
		out = append(out,
			target{what: "compile, 10,000 steps: time", measured: ms(t / 1e6), want: "≤ 150 ms", ok: t/1e6 <= 150, known: true},
			target{what: "compile, 10,000 steps: allocated", measured: fmt.Sprintf("%.1f MB", bytes/1e6), want: "≤ 50 MB", ok: bytes/1e6 <= 50, known: true})
	}
	if put, ok := r.metric("BenchmarkRegistry/default", "put-p99-ratio"); ok {
		get, _ := r.metric("BenchmarkRegistry/default", "get-p99-ratio")
		out = append(out, target{what: "registry p99 at 32 clients, ociwf / plain Distribution", measured: "PUT, GET", ratio: fmt.Sprintf("%.2f×, %.2f×", put, get), want: "≤ 1.10×", ok: put <= 1.10 && get <= 1.10, known: true})
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

func writeStartup(p printer, r *results) {
	if len(r.order["startup"]) == 0 {
		return
	}
	p("## Start-up\n\nEach binary's `version` (or nothing, for the empty Go program), run round-robin;\nwall time from fork to exit, peak RSS from the kernel's accounting.\n\n")
	p("| binary | median | spread | peak RSS (median) | / `cosign version` |\n|---|---|---|---|---|\n")
	cosign := r.nums("startup", "cosign version")
	for _, k := range r.order["startup"] {
		v := r.nums("startup", k)
		rat := "–"
		if len(cosign) > 0 {
			rat = fmt.Sprintf("%.2f×", median(ratios(v, cosign)))
		}
		p("| `%s` | %s | %s | %.1f MiB | %s |\n", k, ms(median(v)), spread(v, "%.1f"), median(r.nums("startup_rss", k))/1024, rat)
	}
	p("\n")
}

func writeProcesses(p printer, r *results) {
	p("## Publish and verify, as processes\n\n")
	p("Both sides run as processes against the one loopback `ociwf registry serve` of the run.\n")
	p("The stock publish pipeline is `oras push` + `cosign sign` + `cosign attest` ×2 (SLSA\n")
	p("provenance and the SBOM); the stock verify pipeline is `cosign verify` +\n")
	p("`cosign verify-attestation` ×2 + `oras pull` + `sha256sum -c`. ociwf's publish\n")
	p("includes compiling the workflow; the stock pipeline gets its files ready-made.\n\n")
	p("| job | ociwf median | spread | stock median | spread | ratio (median of rounds) |\n|---|---|---|---|---|---|\n")
	for _, s := range []struct{ section, label string }{
		{"publish", "publish one workflow"},
		{"bulk", "publish " + orDash(r.str("bulk", "workflows")) + " workflows (one `ociwf publish`; stock: one pipeline each)"},
		{"verify", "verify one version (eight checks)"},
	} {
		o, st := r.nums(s.section, "ours_ms"), r.nums(s.section, "stock_ms")
		if len(o) == 0 {
			continue
		}
		p("| %s | %s | %s ms | %s | %s ms | %.3f× |\n", s.label, ms(median(o)), spread(o, "%.0f"), ms(median(st)), spread(st, "%.0f"), median(ratios(o, st)))
	}
	if v := r.str("verify", "requests"); v != "" {
		p("\nHTTP requests per verify: ociwf %s (its own count); counted by the registry: ociwf %s, stock %s.\n", v, orDash(r.str("verify", "served_ours")), orDash(r.str("verify", "served_stock")))
	}
	if v := r.nums("verify", "ours_inproc_ms"); len(v) > 0 {
		p("Of `ociwf verify`'s wall time, the verification itself (the report's duration) took a median %s.\n", ms(median(v)))
	}
	p("\n")
}

func writeBulkVerify(p printer, r *results) {
	keys := r.order["verify_all"]
	if len(keys) == 0 {
		return
	}
	p("## Bulk verify\n\n`ociwf verify --all` over repositories of signed versions (seeded as `ociwf publish`\ndoes), every version through all eight checks.\n\n")
	p("| versions | concurrency | versions/s (median) | spread | peak RSS (max) | requests/version |\n|---|---|---|---|---|---|\n")
	for _, k := range keys {
		f := strings.Split(k, "/")
		if len(f) != 3 || f[0] != "vps" {
			continue
		}
		v := r.nums("verify_all", k)
		rss := "–"
		if m := maxOf(r.nums("verify_all", "rss/"+f[1]+"/"+f[2])); !math.IsNaN(m) {
			rss = fmt.Sprintf("%.0f MiB", m)
		}
		p("| %s | %s | %.0f | %s | %s | %s |\n", f[1], f[2], median(v), spread(v, "%.0f"), rss, orDash(r.str("verify_all", "reqs/"+f[1]+"/"+f[2])))
	}
	if st := r.nums("verify", "stock_ms"); len(st) > 0 {
		p("\nThe stock pipeline verifies one version per %s (median of the single-verify rounds above): %.2f versions/s.\n", ms(median(st)), 1000/median(st))
	}
	p("\n")
}

// compileSizes are the compile benchmarks, by steps.
var compileSizes = []struct {
	name  string
	steps int
}{{"BenchmarkCompile100", 100}, {"BenchmarkCompile1k", 1000}, {"BenchmarkCompile10k", 10000}, {"BenchmarkCompile20k", 20000}}

func writeCompile(p printer, r *results) {
	if _, ok := r.metric("BenchmarkCompile100", "ns/op"); !ok {
		return
	}
	p("## Compile scaling\n\n`go test ./ociwf/plan -bench Compile -benchmem`: parse, validate and compile a generated DAG.\n\n")
	p("| steps | time/op | µs per step | allocated/op | allocs/op |\n|---|---|---|---|---|\n")
	for _, c := range compileSizes {
		t, ok := r.metric(c.name, "ns/op")
		if !ok {
			continue
		}
		by, _ := r.metric(c.name, "B/op")
		al, _ := r.metric(c.name, "allocs/op")
		p("| %d | %s | %.1f | %.1f MB | %.0f |\n", c.steps, ms(t/1e6), t/1e3/float64(c.steps), by/1e6, al)
	}
	p("\n")
}

func writeLibrary(p printer, r *results) {
	var names []string
	for n := range r.bench {
		if strings.HasPrefix(n, "BenchmarkFetch") || strings.HasPrefix(n, "BenchmarkVerify") || strings.HasPrefix(n, "BenchmarkPushPull") {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return
	}
	sort.Strings(names)
	p("## Library\n\nGo benchmarks in one process against a loopback registry (`go test -bench`, medians of the runs).\n\n")
	p("| benchmark | time/op | other metrics |\n|---|---|---|\n")
	for _, n := range names {
		t, _ := r.metric(n, "ns/op")
		var extra []string
		units := map[string]bool{}
		for _, bl := range r.bench[n] {
			for u := range bl {
				units[u] = true
			}
		}
		var us []string
		for u := range units {
			if u != "ns/op" {
				us = append(us, u)
			}
		}
		sort.Strings(us)
		for _, u := range us {
			v, _ := r.metric(n, u)
			extra = append(extra, strconv.FormatFloat(v, 'g', 4, 64)+" "+u)
		}
		p("| `%s` | %s | %s |\n", strings.TrimPrefix(n, "Benchmark"), fmtNs(t), strings.Join(extra, ", "))
	}
	p("\n")
}

func fmtNs(ns float64) string {
	switch {
	case ns >= 1e6:
		return ms(ns / 1e6)
	case ns >= 1e3:
		return fmt.Sprintf("%.1f µs", ns/1e3)
	default:
		return fmt.Sprintf("%.0f ns", ns)
	}
}

func writeRegistry(p printer, r *results) {
	if _, ok := r.metric("BenchmarkRegistry/default", "put-p50-ours-us"); !ok {
		return
	}
	p("## Registry extension overhead\n\nManifest PUT and GET latency at 32 concurrent clients, ociwf's registry\n(Distribution + ociwf's middleware and front) against plain Distribution configured the\nsame way, in one process (`scripts/bench-registry.sh`).\n\n")
	p("| configuration | op | plain p50 | ociwf p50 | ratio | plain p99 | ociwf p99 | ratio |\n|---|---|---|---|---|---|---|---|\n")
	for _, c := range []string{"default", "audit"} {
		n := "BenchmarkRegistry/" + c
		for _, op := range []string{"put", "get"} {
			g := func(u string) float64 { v, _ := r.metric(n, op+"-"+u); return v }
			if g("p50-ours-us") == 0 {
				continue
			}
			p("| %s | %s | %s | %s | %.2f× | %s | %s | %.2f× |\n", c, strings.ToUpper(op), ms(g("p50-plain-us")/1e3), ms(g("p50-ours-us")/1e3), g("p50-ratio"), ms(g("p99-plain-us")/1e3), ms(g("p99-ours-us")/1e3), g("p99-ratio"))
		}
	}
	p("\n")
}
