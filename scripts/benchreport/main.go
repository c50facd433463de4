// Command benchreport measures start-up and writes docs/benchmarks.md
// from the figures scripts/bench.sh collects. It is run by that script:
//
//	go run ./scripts/benchreport startup -rounds 31 NAME=BINARY [ARG...] ...
//	go run ./scripts/benchreport render -in DIR -md docs/benchmarks.md -svg docs/benchmarks.svg
//
// startup runs each binary (with its arguments, separated by spaces in
// one NAME=... word) round-robin, so that all see the same machine
// state, and prints one "startup" and one "startup_rss" line per binary
// in the results format: SECTION<TAB>KEY<TAB>VALUES (space-separated).
// render reads DIR/*.tsv (that format) and DIR/*.bench (go test -bench
// output) and writes the report and its plot.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: benchreport startup|render ...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "startup":
		err = startup(os.Args[2:], os.Stdout)
	case "render":
		err = render(os.Args[2:])
	default:
		err = fmt.Errorf("unknown command %q: want startup or render", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func startup(args []string, w io.Writer) error {
	fs := flag.NewFlagSet("startup", flag.ContinueOnError)
	rounds := fs.Int("rounds", 31, "runs of each binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	type bin struct {
		name string
		argv []string
		ms   []float64
		rss  []float64
	}
	var bins []*bin
	for _, a := range fs.Args() {
		name, cmd, ok := strings.Cut(a, "=")
		if !ok || cmd == "" {
			return fmt.Errorf("%q: want NAME=BINARY [ARG...]", a)
		}
		bins = append(bins, &bin{name: name, argv: strings.Fields(cmd)})
	}
	for r := 0; r < *rounds+1; r++ {
		for _, b := range bins {
			c := exec.Command(b.argv[0], b.argv[1:]...)
			t := time.Now()
			if out, err := c.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %w: %s", b.name, err, out)
			}
			d := time.Since(t)
			if r == 0 {
				continue // warm the page cache
			}
			b.ms = append(b.ms, float64(d.Microseconds())/1000)
			b.rss = append(b.rss, float64(c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)) // KiB on Linux
		}
	}
	for _, b := range bins {
		fmt.Fprintf(w, "startup\t%s\t%s\n", b.name, join(b.ms))
		fmt.Fprintf(w, "startup_rss\t%s\t%s\n", b.name, join(b.rss))
	}
	return nil
}

func join(v []float64) string {
	s := make([]string, len(v))
	for i, x := range v {
		s[i] = strconv.FormatFloat(x, 'f', -1, 64)
	}
	return strings.Join(s, " ")
}

// results are the figures of one bench.sh run.
type results struct {
	tsv   map[string]map[string][]string // section -> key -> values
	order map[string][]string            // section -> keys in file order
	bench map[string][]benchLine         // benchmark name (no -N suffix) -> runs
}

// benchLine is one result line of go test -bench: its metrics by unit.
type benchLine map[string]float64

var benchRe = regexp.MustCompile(`^(Benchmark\S+?)(-\d+)?\s+(\d+)\s+(.*)$`)

func load(dir string) (*results, error) {
	r := &results{tsv: map[string]map[string][]string{}, order: map[string][]string{}, bench: map[string][]benchLine{}}
	tsvs, _ := filepath.Glob(filepath.Join(dir, "*.tsv"))
	benches, _ := filepath.Glob(filepath.Join(dir, "*.bench"))
	if len(tsvs)+len(benches) == 0 {
		return nil, fmt.Errorf("no *.tsv or *.bench files in %s", dir)
	}
	for _, f := range tsvs {
		if err := eachLine(f, func(line string) {
			p := strings.SplitN(line, "\t", 3)
			if len(p) < 3 {
				return
			}
			if r.tsv[p[0]] == nil {
				r.tsv[p[0]] = map[string][]string{}
			}
			if _, seen := r.tsv[p[0]][p[1]]; !seen {
				r.order[p[0]] = append(r.order[p[0]], p[1])
			}
			r.tsv[p[0]][p[1]] = append(r.tsv[p[0]][p[1]], strings.Fields(p[2])...)
		}); err != nil {
			return nil, err
		}
	}
	for _, f := range benches {
		if err := eachLine(f, func(line string) {
			m := benchRe.FindStringSubmatch(line)
			if m == nil {
				return
			}
			f := strings.Fields(m[4])
			bl := benchLine{}
			for i := 0; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					bl[f[i+1]] = v
				}
			}
			r.bench[m[1]] = append(r.bench[m[1]], bl)
		}); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func eachLine(path string, fn func(string)) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		fn(sc.Text())
	}
	return sc.Err()
}

// str is a single-valued figure, or "" if missing.
func (r *results) str(section, key string) string {
	return strings.Join(r.tsv[section][key], " ")
}

// nums is a figure's values as numbers.
func (r *results) nums(section, key string) []float64 {
	var out []float64
	for _, s := range r.tsv[section][key] {
		if v, err := strconv.ParseFloat(s, 64); err == nil {
			out = append(out, v)
		}
	}
	return out
}

// metric is the median over the runs of benchmark name of unit.
func (r *results) metric(name, unit string) (float64, bool) {
	var v []float64
	for _, bl := range r.bench[name] {
		if x, ok := bl[unit]; ok {
			v = append(v, x)
		}
	}
	if len(v) == 0 {
		return 0, false
	}
	return median(v), true
}

func median(v []float64) float64 { return quantile(v, 0.5) }

// quantile interpolates between the closest ranks.
func quantile(v []float64, q float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// ratios are a[i]/b[i], pairwise (rounds that ran side by side).
func ratios(a, b []float64) []float64 {
	n := min(len(a), len(b))
	out := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if b[i] > 0 {
			out = append(out, a[i]/b[i])
		}
	}
	return out
}

// spread is "p10–p90 (n runs)".
func spread(v []float64, format string) string {
	if len(v) == 0 {
		return "–"
	}
	return fmt.Sprintf(format+"–"+format+" (%d)", quantile(v, 0.1), quantile(v, 0.9), len(v))
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

func render(args []string) error {
	fs := flag.NewFlagSet("render", flag.ContinueOnError)
	in := fs.String("in", "", "directory of *.tsv and *.bench results")
	md := fs.String("md", "docs/benchmarks.md", "report to write")
	svg := fs.String("svg", "docs/benchmarks.svg", "plot to write")
	readme := fs.String("readme", "", "file whose benchmarks block (between "+readmeBegin+" and "+readmeEnd+") gets the summary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" {
		return errors.New("render: -in DIR is required")
	}
	r, err := load(*in)
	if err != nil {
		return err
	}
	var b strings.Builder
	writeReport(&b, r, filepath.Base(*svg))
	if err := os.WriteFile(*md, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(*svg, []byte(plot(r)), 0o644); err != nil {
		return err
	}
	if *readme == "" {
		return nil
	}
	return updateReadme(*readme, r, *md)
}

// The README's block of benchmark figures, rewritten by render -readme.
const (
	readmeBegin = "<!-- benchmarks:begin -->"
	readmeEnd   = "<!-- benchmarks:end -->"
)

// updateReadme replaces the benchmarks block of path with the summary of
// r, linking to the report at md.
func updateReadme(path string, r *results, md string) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	s := string(raw)
	i, j := strings.Index(s, readmeBegin), strings.Index(s, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no %s ... %s block", path, readmeBegin, readmeEnd)
	}
	var b strings.Builder
	writeSummary(&b, r, md)
	s = s[:i+len(readmeBegin)] + "\n" + b.String() + s[j:]
	return os.WriteFile(path, []byte(s), 0o644)
}
