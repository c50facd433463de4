package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/html"
)

// chromium finds the headless browser the dashboard test renders with:
// $OCIWF_CHROMIUM, else chromium on PATH (scripts/services.sh installs
// Debian's). Without one the test is skipped, unless
// OCIWF_REQUIRE_SERVICES=1 (as scripts/test.sh sets) makes that a failure.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("OCIWF_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
		t.Fatal("chromium is not installed: run scripts/services.sh")
	}
	t.Skip("chromium is not installed (scripts/services.sh installs it)")
	return ""
}

// headless runs Chromium headless on url with a fresh profile and no
// network beyond the page, and returns what it printed.
func headless(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	flags := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + t.TempDir(), "--hide-scrollbars"}
	cmd := exec.CommandContext(ctx, bin, append(flags, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("chromium %v: %v\n%s", args, err, stderr.String())
	}
	return stdout.Bytes()
}

// checkDashboard checks the HTML report page against the JSON report of
// the same repositories: the page loads nothing from elsewhere, Chromium
// renders it to a screenshot that is not blank, and every figure in the
// rendered DOM (data-metric) and every table's row count (data-rows)
// equal the JSON report's.
func checkDashboard(t *testing.T, page, reportJSON string) {
	t.Helper()
	selfContained(t, page)
	bin := chromium(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	if err := os.WriteFile(file, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "file://" + file
	dom := headless(t, bin, "--dump-dom", url)
	shot := filepath.Join(dir, "report.png")
	headless(t, bin, "--screenshot="+shot, "--window-size=1280,2000", url)

	for _, p := range dashboardProblems(t, dom, reportJSON) {
		t.Error(p)
	}
	// The comparison itself fails on a figure that differs.
	tampered := strings.Replace(reportJSON, `"versions": `, `"versions": 1`, 1)
	if len(dashboardProblems(t, dom, tampered)) == 0 {
		t.Error("the dashboard check found nothing wrong against a tampered JSON report")
	}
	notBlank(t, shot)
}

// dashboardProblems compares the rendered DOM with the JSON report.
func dashboardProblems(t *testing.T, dom []byte, reportJSON string) []string {
	t.Helper()
	var problems []string
	var want any
	if err := json.Unmarshal([]byte(reportJSON), &want); err != nil {
		t.Fatal(err)
	}
	doc, err := html.Parse(bytes.NewReader(dom))
	if err != nil {
		t.Fatalf("parse the rendered DOM: %v", err)
	}
	seen := map[string]bool{}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			if m := attr(n, "data-metric"); m != "" {
				seen[m] = true
				shown, ok := attrOK(n, "data-value")
				if !ok {
					shown = strings.TrimSpace(text(n))
				}
				if err := sameFigure(shown, lookup(want, m)); err != nil {
					problems = append(problems, fmt.Sprintf("dashboard %s: %v", m, err))
				}
			}
			if m := attr(n, "data-rows"); m != "" {
				seen[m] = true
				rows := 0
				for c := n.FirstChild; c != nil; c = c.NextSibling {
					if c.Type == html.ElementNode && (c.Data == "tr" || c.Data == "li") {
						rows++
					}
				}
				if w := count(lookup(want, m)); rows != w {
					problems = append(problems, fmt.Sprintf("dashboard %s: %d rows, the JSON report has %d", m, rows, w))
				}
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	required := []string{"lifecycle.versions", "lifecycle.exceptionCount", "lifecycle.deprecatedReferenced",
		"immutability.published", "immutability.immutable", "immutability.coverage", "immutability.violations",
		"immutability.reviewToPublishVersions", "audit.entries", "audit.inPeriod", "audit.breaks",
		"integrity.checks", "integrity.ok", "integrity.failed", "integrity.errors", "integrity.successRate",
		"lifecycle.states", "immutability.violationEvents", "integrity.violations", "lifecycle.signers",
		"lifecycle.exceptions", "lifecycle.referenced"}
	for _, s := range []string{"draft", "review", "approved", "published", "deprecated", "retired", "archived", "quarantined"} {
		required = append(required, "lifecycle.states."+s)
	}
	for i := range count(lookup(want, "integrity.series")) {
		required = append(required, fmt.Sprintf("integrity.series.%d.successRate", i))
	}
	for _, m := range required {
		if !seen[m] {
			problems = append(problems, "the dashboard does not show "+m)
		}
	}
	return problems
}

// selfContained fails on anything the page would load from elsewhere.
func selfContained(t *testing.T, page string) {
	t.Helper()
	doc, err := html.Parse(strings.NewReader(page))
	if err != nil {
		t.Fatal(err)
	}
	var walk func(n *html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode {
			switch n.Data {
			case "script", "link", "iframe", "object", "embed", "img", "image", "use":
				t.Errorf("the page holds a <%s> element", n.Data)
			}
			for _, a := range n.Attr {
				switch strings.ToLower(a.Key) {
				case "src", "href", "xlink:href", "srcset", "action", "poster":
					t.Errorf("the page loads %s=%q", a.Key, a.Val)
				}
				if strings.Contains(strings.ToLower(a.Val), "url(") {
					t.Errorf("the page loads %q", a.Val)
				}
			}
		}
		if n.Type == html.TextNode && n.Parent != nil && n.Parent.Data == "style" &&
			(strings.Contains(n.Data, "url(") || strings.Contains(n.Data, "@import")) {
			t.Error("the page's style loads something")
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(doc)
	if !strings.Contains(page, `http-equiv="Content-Security-Policy" content="default-src 'none'`) {
		t.Error("the page lacks its Content-Security-Policy")
	}
}

// sameFigure compares a figure as shown ("83.3%", "7", "not computed")
// with the JSON report's value.
func sameFigure(shown string, want any) error {
	switch w := want.(type) {
	case nil:
		if shown != "null" && !strings.HasPrefix(shown, "not ") {
			return fmt.Errorf("shows %q, the JSON report has null", shown)
		}
		return nil
	case float64:
		if p, ok := strings.CutSuffix(shown, "%"); ok {
			got, err := strconv.ParseFloat(p, 64)
			if err != nil || math.Abs(got-w*100) > 0.05 {
				return fmt.Errorf("shows %q, the JSON report has %v", shown, w)
			}
			return nil
		}
		got, err := strconv.ParseFloat(shown, 64)
		if err != nil || got != w {
			return fmt.Errorf("shows %q, the JSON report has %v", shown, w)
		}
		return nil
	}
	return fmt.Errorf("shows %q, the JSON report has %v, not a number", shown, want)
}

// lookup finds the value at a dotted path (list indexes as numbers);
// a path the report does not have is a missing marker.
func lookup(v any, path string) any {
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			next, ok := x[k]
			if !ok {
				return missing{path}
			}
			v = next
		case []any:
			i, err := strconv.Atoi(k)
			if err != nil || i < 0 || i >= len(x) {
				return missing{path}
			}
			v = x[i]
		default:
			return missing{path}
		}
	}
	return v
}

type missing struct{ path string }

func count(v any) int {
	switch x := v.(type) {
	case []any:
		return len(x)
	case map[string]any:
		return len(x)
	}
	return 0
}

func attr(n *html.Node, key string) string {
	v, _ := attrOK(n, key)
	return v
}

func attrOK(n *html.Node, key string) (string, bool) {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val, true
		}
	}
	return "", false
}

func text(n *html.Node) string {
	if n.Type == html.TextNode {
		return n.Data
	}
	var b strings.Builder
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		b.WriteString(text(c))
	}
	return b.String()
}

// notBlank fails unless the screenshot shows a page: a good share of
// pixels that are not the background, in several colours.
func notBlank(t *testing.T, file string) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatalf("no screenshot: %v", err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("decode the screenshot: %v", err)
	}
	b := img.Bounds()
	if b.Dx() < 800 || b.Dy() < 800 {
		t.Fatalf("screenshot is %v", b)
	}
	br, bgr, bb, _ := img.At(b.Max.X-1, b.Max.Y-1).RGBA()
	colours := map[[3]uint32]bool{}
	ink := 0
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colours[[3]uint32{r >> 8, g >> 8, bl >> 8}] = true
			if r != br || g != bgr || bl != bb {
				ink++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	if share := float64(ink) / float64(total); share < 0.05 || len(colours) < 16 {
		t.Errorf("the screenshot looks blank: %.1f%% of pixels drawn, %d colours", share*100, len(colours))
	}
}
