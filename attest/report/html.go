package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strings"

	"ociwf.dev/policy/lifecycle"
)

//go:embed report.html
var htmlPage string

// HTML writes r as one self-contained HTML page: inline CSS and SVG, no
// script and no external resource (its Content-Security-Policy forbids
// loading any), so it opens offline and can be attached to an audit.
// Recorded text is escaped, with control and bidirectional formatting
// characters shown as U+XXXX.
// Every figure the page shows is marked with a data-metric attribute
// naming its field in the JSON report (lifecycle.states.published,
// integrity.series.3.successRate), and each table body with data-rows
// naming the list it shows.
func HTML(w io.Writer, r *Report) error {
	t, err := template.New("report").Funcs(template.FuncMap{
		"join":    strings.Join,
		"ts":      ts,
		"percent": percent,
		"metric":  func(name string, v *float64) namedValue { return namedValue{name, v} },
		"deref":   deref,
		"add":     func(a, b float64) float64 { return a + b },
		"sub":     func(a, b float64) float64 { return a - b },
	}).Parse(htmlPage)
	if err != nil {
		return fmt.Errorf("report: parse the HTML template: %w", err)
	}
	d, err := displayed(r)
	if err != nil {
		return err
	}
	return t.Execute(w, newPage(d))
}

type namedValue struct {
	Name  string
	Value *float64
}

func deref(v any) any {
	switch p := v.(type) {
	case *int:
		return *p
	case *float64:
		return *p
	}
	return v
}

// page is what the template shows: the report and the figures laid out.
type page struct {
	*Report
	PeriodText string
	StateRows  []stateRow
	Chart      *chart
}

type stateRow struct {
	State lifecycle.State
	Count int
	// Width is the bar's share of the largest count, in percent.
	Width float64
}

// chart is the success-rate-over-time bar chart, laid out in SVG units.
type chart struct {
	Width, Height            float64
	Left, Right, Top, Bottom float64
	PlotWidth, PlotHeight    float64
	Bucket, First, Last      string
	Grid                     []gridLine
	Bars                     []bar
}

type gridLine struct {
	Y     float64
	Label string
}

type bar struct {
	Index      int
	X, Y, W, H float64
	Fill       string
	// Value is the bucket's success rate as the JSON report has it
	// ("null" without checks that passed or failed).
	Value string
	Title string
}

func newPage(r *Report) *page {
	p := &page{Report: r, PeriodText: "open to open"}
	since, until := "open", "open"
	if r.Period.Since != nil {
		since = ts(*r.Period.Since)
	}
	if r.Period.Until != nil {
		until = ts(*r.Period.Until)
	}
	p.PeriodText = since + " to " + until
	most := 0
	for _, s := range lifecycle.States() {
		most = max(most, r.Lifecycle.States[s])
	}
	for _, s := range lifecycle.States() {
		n := r.Lifecycle.States[s]
		w := 0.0
		if most > 0 {
			w = float64(n) * 100 / float64(most)
		}
		p.StateRows = append(p.StateRows, stateRow{s, n, w})
	}
	if r.Integrity != nil && len(r.Integrity.Series) > 0 {
		p.Chart = newChart(r.Integrity)
	}
	return p
}

func newChart(in *Integrity) *chart {
	c := &chart{Width: 760, Height: 240, Left: 48, Top: 12}
	c.Right, c.Bottom = c.Width-12, c.Height-8
	c.PlotWidth, c.PlotHeight = c.Right-c.Left, c.Bottom-20-c.Top
	c.Bucket = in.BucketWidth.String()
	s := in.Series
	c.First, c.Last = ts(s[0].Start), ts(s[len(s)-1].End)
	for _, f := range []float64{0, 0.25, 0.5, 0.75, 1} {
		c.Grid = append(c.Grid, gridLine{c.Top + c.PlotHeight*(1-f), fmt.Sprintf("%.0f%%", f*100)})
	}
	slot := c.PlotWidth / float64(len(s))
	gap := min(slot*0.2, 4)
	for i, b := range s {
		x := c.Left + float64(i)*slot + gap/2
		br := bar{Index: i, X: x, W: slot - gap, Value: "null", Fill: "#8c959f"}
		rate := 0.0
		switch {
		case b.SuccessRate != nil:
			rate = *b.SuccessRate
			br.Value = fmt.Sprint(rate)
			br.Fill = "#1a7f37"
			if b.Failed > 0 {
				br.Fill = "#cf222e"
			}
			br.Title = fmt.Sprintf("%s to %s: %.1f%% (%d ok, %d failed, %d could not run)", ts(b.Start), ts(b.End), rate*100, b.OK, b.Failed, b.Errors)
		default:
			br.Title = fmt.Sprintf("%s to %s: no check passed or failed (%d could not run)", ts(b.Start), ts(b.End), b.Errors)
		}
		h := c.PlotHeight * rate
		if b.SuccessRate == nil || h < 2 {
			// An empty or 0% bucket still shows, as a sliver.
			h = 2
		}
		br.Y, br.H = c.Top+c.PlotHeight-h, h
		c.Bars = append(c.Bars, br)
	}
	return c
}
