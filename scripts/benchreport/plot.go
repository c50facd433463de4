package main

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
)

// point is one measured figure of a panel.
type point struct{ x, y float64 }

// panel is one chart: a measured series and a line through the origin
// and its last point, against which linear scaling is read.
type panel struct {
	title, xlabel, ylabel string
	points                []point
}

// plot draws compile time against steps and bulk-verify time against
// versions, as an SVG of two panels.
func plot(r *results) string {
	var compile panel
	compile.title, compile.xlabel, compile.ylabel = "Compile", "steps", "ms per compile"
	for _, c := range compileSizes {
		if t, ok := r.metric(c.name, "ns/op"); ok {
			compile.points = append(compile.points, point{float64(c.steps), t / 1e6})
		}
	}
	var bulk panel
	bulk.title, bulk.xlabel, bulk.ylabel = "verify --all", "versions", "seconds per run"
	best := map[float64]float64{} // versions -> best median versions/s
	for _, k := range r.order["verify_all"] {
		f := strings.Split(k, "/")
		if len(f) != 3 || f[0] != "vps" {
			continue
		}
		n, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		if v := median(r.nums("verify_all", k)); v > best[n] {
			best[n] = v
		}
	}
	for n, vps := range best {
		bulk.points = append(bulk.points, point{n, n / vps})
	}
	sort.Slice(bulk.points, func(i, j int) bool { return bulk.points[i].x < bulk.points[j].x })

	const w, h = 880, 360
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", w, h, w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	drawPanel(&b, compile, 0, 0, w/2, h)
	drawPanel(&b, bulk, w/2, 0, w/2, h)
	b.WriteString("</svg>\n")
	return b.String()
}

func drawPanel(b *strings.Builder, p panel, ox, oy, w, h int) {
	const left, right, top, bottom = 70, 20, 40, 50
	pw, ph := float64(w-left-right), float64(h-top-bottom)
	x0, y0 := float64(ox+left), float64(oy+top)+ph
	fmt.Fprintf(b, `<text x="%d" y="%d" font-size="14" font-weight="bold">%s</text>`+"\n", ox+left, oy+24, esc(p.title))
	if len(p.points) == 0 {
		fmt.Fprintf(b, `<text x="%d" y="%d">not measured in this run</text>`+"\n", ox+left, oy+h/2)
		return
	}
	maxX, maxY := 0.0, 0.0
	for _, pt := range p.points {
		maxX, maxY = math.Max(maxX, pt.x), math.Max(maxY, pt.y)
	}
	maxX, maxY = nice(maxX), nice(maxY*1.1)
	sx := func(x float64) float64 { return x0 + x/maxX*pw }
	sy := func(y float64) float64 { return y0 - y/maxY*ph }
	// axes and ticks
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, y0, x0+pw, y0)
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="black"/>`+"\n", x0, y0, x0, y0-ph)
	for i := 0; i <= 4; i++ {
		xv, yv := maxX*float64(i)/4, maxY*float64(i)/4
		fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#ddd"/>`+"\n", x0, sy(yv), x0+pw, sy(yv))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", sx(xv), y0+16, tick(xv))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`+"\n", x0-6, sy(yv)+4, tick(yv))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`+"\n", x0+pw/2, y0+36, esc(p.xlabel))
	fmt.Fprintf(b, `<text transform="translate(%d,%.1f) rotate(-90)" text-anchor="middle">%s</text>`+"\n", ox+16, y0-ph/2, esc(p.ylabel))
	// linear reference through the origin and the last point
	last := p.points[len(p.points)-1]
	fmt.Fprintf(b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#999" stroke-dasharray="4 4"/>`+"\n", sx(0), sy(0), sx(last.x), sy(last.y))
	// the series
	var path []string
	for _, pt := range p.points {
		path = append(path, fmt.Sprintf("%.1f,%.1f", sx(pt.x), sy(pt.y)))
	}
	fmt.Fprintf(b, `<polyline points="%s" fill="none" stroke="#1f77b4" stroke-width="2"/>`+"\n", strings.Join(path, " "))
	for _, pt := range p.points {
		fmt.Fprintf(b, `<circle cx="%.1f" cy="%.1f" r="4" fill="#1f77b4"><title>%s: %s</title></circle>`+"\n", sx(pt.x), sy(pt.y), tick(pt.x), strconv.FormatFloat(pt.y, 'g', 4, 64))
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end" fill="#1f77b4">%s</text>`+"\n", sx(pt.x)-6, sy(pt.y)-8, strconv.FormatFloat(pt.y, 'g', 3, 64))
	}
	fmt.Fprintf(b, `<text x="%.1f" y="%.1f" fill="#666" text-anchor="end">dashed: linear in %s</text>`+"\n", x0+pw, float64(oy+24), esc(p.xlabel))
}

// nice rounds v up to 1, 2 or 5 times a power of ten.
func nice(v float64) float64 {
	if v <= 0 {
		return 1
	}
	e := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*e {
			return m * e
		}
	}
	return 10 * e
}

func tick(v float64) string {
	switch {
	case v >= 1000 && math.Mod(v, 1000) == 0:
		return strconv.FormatFloat(v/1000, 'f', -1, 64) + "k"
	case v == math.Trunc(v):
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
