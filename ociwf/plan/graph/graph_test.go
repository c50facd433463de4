package graph_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
	"ociwf.dev/ociwf/plan/graph"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// pinned resolves every reference to one digest, as a registry would.
type pinned struct{}

func (pinned) Resolve(_ context.Context, kind plan.Kind, ref string) (plan.Dependency, error) {
	name, _, err := plan.SplitRef(kind, ref)
	if err != nil {
		return plan.Dependency{}, err
	}
	const dg = "sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41"
	return plan.Dependency{Kind: kind, Ref: ref, Pinned: name + "@" + dg, Digest: dg}, nil
}

func compile(t *testing.T, name string) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "workflows", name))
	if err != nil {
		t.Fatal(err)
	}
	wf, err := dsl.Parse(name, src)
	if err != nil {
		t.Fatal(err)
	}
	// Offline when every reference is pinned, as ociwf compile --offline.
	p, err := plan.Compile(context.Background(), wf, src, plan.Offline{})
	if errors.Is(err, errdef.ErrNotPinned) {
		p, err = plan.Compile(context.Background(), wf, src, pinned{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func render(t *testing.T, p *plan.Plan, f graph.Format) string {
	t.Helper()
	var b bytes.Buffer
	if err := graph.Render(&b, p, f); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// TestGolden pins the graphs of the sample workflows: stages, edges,
// conditions and pinned uses references, byte for byte.
func TestGolden(t *testing.T) {
	for _, wf := range []string{"build-test-release", "conditional-deploy", "nested-uses", "fan-out-fan-in"} {
		p := compile(t, wf+".yaml")
		for _, f := range graph.Formats() {
			t.Run(wf+"."+string(f), func(t *testing.T) {
				got := render(t, p, f)
				golden := filepath.Join("testdata", wf+"."+string(f))
				if *update {
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatal(err)
				}
				if got != string(want) {
					t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", f, golden, got)
				}
				// The same plan renders the same bytes, whatever the
				// order of its steps.
				shuffled := *p
				shuffled.Steps = append([]plan.Step(nil), p.Steps...)
				for i, j := 0, len(shuffled.Steps)-1; i < j; i, j = i+1, j-1 {
					shuffled.Steps[i], shuffled.Steps[j] = shuffled.Steps[j], shuffled.Steps[i]
				}
				if again := render(t, &shuffled, f); again != got {
					t.Errorf("reordering the steps changed the %s output:\n%s", f, again)
				}
			})
		}
	}
}

// hostile is a plan whose ids, references and conditions hold every
// character with a meaning in Mermaid or DOT.
func hostile() *plan.Plan {
	names := []string{
		`end`, `graph`, `subgraph`, `node`, `a"b`, `x"] --> s0["pwned`, "line\nbreak", `back\slash\N\G\l`,
		`<b>bold</b>&amp;`, "`md`", `#quot;#35;`, `brackets[(){}]|pipe|`, "tab\there\r", `-->`, `%%{init: {}}%%`, `trailing\`,
	}
	p := &plan.Plan{Workflow: plan.Workflow{Name: "evil\"}\n%%", Version: `1.0.0\`}}
	for i, n := range names {
		s := plan.Step{ID: n, Stage: i % 3}
		if i > 2 {
			s.Needs = []string{names[i%3]}
		}
		switch i % 4 {
		case 1:
			s.When = &plan.Condition{Expr: fmt.Sprintf("params.env == \"%s\" && size(x) > 0 ||\nsteps.a.outputs.b < 3", n)}
		case 2:
			s.Uses = `reg.example/w"]]` + n + "@sha256:abc"
		}
		p.Steps = append(p.Steps, s)
	}
	return p
}

// label is a step's label as Render should show it, line by line, with
// control characters but the line breaks as spaces.
func label(s plan.Step) string {
	lines := []string{s.ID}
	if s.Uses != "" {
		lines = append(lines, "uses "+s.Uses)
	}
	if s.When != nil {
		lines = append(lines, "when "+s.When.Expr)
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 && r != '\n' {
			return ' '
		}
		return r
	}, strings.Join(lines, "\n"))
}

var (
	mermaidLine  = regexp.MustCompile(`^(flowchart LR|  %% workflow [^%\n]*|  subgraph stage\d+ \["stage \d+"\]|  end|    (s\d+)(\[\[|\[)"([^"]*)"(\]\]|\])|  s\d+ (-->|-\.->) s\d+|  classDef conditional stroke-dasharray: 5 5|  class s\d+(,s\d+)* conditional)$`)
	mermaidCodes = strings.NewReplacer("<br/>", "\n", "#quot;", `"`, "#35;", "#", "#37;", "%", "#amp;", "&", "#lt;", "<", "#gt;", ">", "#96;", "`")
)

// TestMermaidEscaping renders the hostile plan and checks that every line
// has one of the forms Render writes, and that each label reads back as
// the step's text: no id, quote, bracket or newline broke out of its
// label.
func TestMermaidEscaping(t *testing.T) {
	p := hostile()
	out := render(t, p, graph.Mermaid)
	labels := map[string]bool{}
	for _, s := range p.Steps {
		labels[label(s)] = true
	}
	nodes := 0
	for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		m := mermaidLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("line %q is not one Render writes", line)
			continue
		}
		if m[3] == "" {
			continue
		}
		nodes++
		if raw := m[4]; strings.ContainsAny(strings.ReplaceAll(raw, "<br/>", ""), "<>`\"&%\n\r\t") {
			t.Errorf("label %q holds a character Mermaid reads", raw)
		}
		got := mermaidCodes.Replace(m[4])
		if !labels[got] {
			t.Errorf("label %q reads back as %q, no step's text", m[4], got)
		}
		delete(labels, got)
	}
	if nodes != len(p.Steps) || len(labels) != 0 {
		t.Errorf("%d nodes for %d steps; labels not shown: %v\n%s", nodes, len(p.Steps), labels, out)
	}
}

// TestDOTParses renders the sample and hostile plans as DOT and parses
// them with a parser for the subset of DOT Render writes: the whole text
// must be one digraph, every statement well-formed, and each label must
// read back as its step's text.
func TestDOTParses(t *testing.T) {
	for name, p := range map[string]*plan.Plan{"hostile": hostile(), "build-test-release": compile(t, "build-test-release.yaml"), "nested-uses": compile(t, "nested-uses.yaml")} {
		t.Run(name, func(t *testing.T) {
			out := render(t, p, graph.DOT)
			g, err := parseDOT(out)
			if err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			graphviz(t, out)
			if g.label != label(plan.Step{ID: p.Workflow.Name + " " + p.Workflow.Version}) {
				t.Errorf("graph label %q", g.label)
			}
			labels := map[string]bool{}
			for _, s := range p.Steps {
				labels[label(s)] = true
			}
			for id, l := range g.nodes {
				if !labels[l] {
					t.Errorf("node %s: label %q is no step's text", id, l)
				}
				delete(labels, l)
			}
			if len(labels) != 0 {
				t.Errorf("labels not shown: %v", labels)
			}
			edges := 0
			for _, s := range p.Steps {
				edges += len(s.Needs)
			}
			if len(g.edges) != edges {
				t.Errorf("%d edges, want %d", len(g.edges), edges)
			}
			for _, e := range g.edges {
				if _, ok := g.nodes[e[0]]; !ok {
					t.Errorf("edge from undeclared node %s", e[0])
				}
				if _, ok := g.nodes[e[1]]; !ok {
					t.Errorf("edge to undeclared node %s", e[1])
				}
			}
		})
	}
}

// graphviz has Graphviz's dot read src, when it is installed, and fails t
// on any error or warning it prints.
func graphviz(t *testing.T, src string) {
	t.Helper()
	dot, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
			t.Fatal("no dot on PATH (scripts/services.sh installs graphviz)")
		}
		t.Log("no dot on PATH: the DOT output is checked by parseDOT alone")
		return
	}
	cmd := exec.Command(dot, "-Tcanon")
	cmd.Stdin = strings.NewReader(src)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Errorf("dot -Tcanon: %v\n%s", err, stderr.String())
	}
}

// TestRenderRefuses checks the errors: an unknown format, and a plan whose
// steps need a step it does not have, both invalid, with nothing written.
func TestRenderRefuses(t *testing.T) {
	good := compile(t, "build-test-release.yaml")
	bad := &plan.Plan{Steps: []plan.Step{{ID: "a", Needs: []string{"ghost"}}}}
	dup := &plan.Plan{Steps: []plan.Step{{ID: "a"}, {ID: "a", Stage: 1}}}
	for _, c := range []struct {
		name string
		p    *plan.Plan
		f    graph.Format
		want string
	}{
		{"unknown format", good, "svg", `graph format "svg"`},
		{"dangling need", bad, graph.DOT, `needs "ghost"`},
		{"duplicate id", dup, graph.Mermaid, `two steps have the id "a"`},
	} {
		var b bytes.Buffer
		err := graph.Render(&b, c.p, c.f)
		if !errors.Is(err, errdef.ErrInvalid) || !strings.Contains(fmt.Sprint(err), c.want) || b.Len() != 0 {
			t.Errorf("%s: %v, %d bytes written; want an invalid-input error naming %q and nothing written", c.name, err, b.Len(), c.want)
		}
	}
}

// dotGraph is what parseDOT read: node labels by node id, and edges.
type dotGraph struct {
	label string
	nodes map[string]string
	edges [][2]string
}

// parseDOT parses the DOT subset Render writes:
//
//	digraph ID { stmt* }
//	stmt: ID = value ; | node [attrs] ; | subgraph ID { stmt* } | ID [attrs] ; | ID -> ID [attrs]? ;
//
// following DOT's lexical rules for quoted strings (only \" is an
// escape of the string; the label's escString then reads \\ and \n).
func parseDOT(src string) (*dotGraph, error) {
	toks, err := lexDOT(src)
	if err != nil {
		return nil, err
	}
	g := &dotGraph{nodes: map[string]string{}}
	p := &dotParser{toks: toks}
	if !p.accept("digraph") {
		return nil, fmt.Errorf("does not start with digraph: %q", p.peek().text)
	}
	if _, err := p.id(); err != nil {
		return nil, err
	}
	if err := p.block(g, 0); err != nil {
		return nil, err
	}
	if p.i != len(p.toks) {
		return nil, fmt.Errorf("text after the graph: %v", p.toks[p.i:])
	}
	return g, nil
}

type token struct {
	text   string
	quoted bool
}

func lexDOT(src string) ([]token, error) {
	var toks []token
	for i := 0; i < len(src); {
		c := src[i]
		switch {
		case c == ' ' || c == '\n' || c == '\t':
			i++
		case c == '"':
			var b strings.Builder
			j := i + 1
			for ; j < len(src) && src[j] != '"'; j++ {
				if src[j] == '\n' {
					return nil, fmt.Errorf("raw line break in a quoted string at %d", j)
				}
				if src[j] == '\\' && j+1 < len(src) {
					b.WriteByte(src[j])
					j++
				}
				b.WriteByte(src[j])
			}
			if j >= len(src) {
				return nil, fmt.Errorf("unterminated string at %d", i)
			}
			toks = append(toks, token{b.String(), true})
			i = j + 1
		case strings.HasPrefix(src[i:], "->"):
			toks = append(toks, token{"->", false})
			i += 2
		case strings.ContainsRune("{}[]=;,", rune(c)):
			toks = append(toks, token{string(c), false})
			i++
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9':
			j := i
			for j < len(src) && (src[j] == '_' || src[j] >= 'a' && src[j] <= 'z' || src[j] >= 'A' && src[j] <= 'Z' || src[j] >= '0' && src[j] <= '9') {
				j++
			}
			toks = append(toks, token{src[i:j], false})
			i = j
		default:
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return toks, nil
}

type dotParser struct {
	toks []token
	i    int
}

func (p *dotParser) peek() token {
	if p.i < len(p.toks) {
		return p.toks[p.i]
	}
	return token{}
}

func (p *dotParser) accept(s string) bool {
	if t := p.peek(); !t.quoted && t.text == s {
		p.i++
		return true
	}
	return false
}

func (p *dotParser) expect(s string) error {
	if !p.accept(s) {
		return fmt.Errorf("want %q, got %q at token %d", s, p.peek().text, p.i)
	}
	return nil
}

// id reads an ID: a plain identifier or a quoted string.
func (p *dotParser) id() (token, error) {
	t := p.peek()
	if t.text == "" && !t.quoted || !t.quoted && strings.ContainsAny(t.text, "{}[]=;,-") {
		return t, fmt.Errorf("want an ID, got %q at token %d", t.text, p.i)
	}
	p.i++
	return t, nil
}

func (p *dotParser) attrs() (map[string]token, error) {
	a := map[string]token{}
	if err := p.expect("["); err != nil {
		return nil, err
	}
	for !p.accept("]") {
		k, err := p.id()
		if err != nil {
			return nil, err
		}
		if err := p.expect("="); err != nil {
			return nil, err
		}
		v, err := p.id()
		if err != nil {
			return nil, err
		}
		a[k.text] = v
		p.accept(",")
	}
	return a, nil
}

// escString reads a label's escapes: \\, \" and \n; any other escape
// (\N, \G, \l ...) would be Graphviz's, not the text.
func escString(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case '\\', '"':
			b.WriteByte(s[i])
		case 'n':
			b.WriteByte('\n')
		default:
			return "", fmt.Errorf("label %q has the Graphviz escape \\%c", s, s[i])
		}
	}
	return b.String(), nil
}

func (p *dotParser) block(g *dotGraph, depth int) error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for !p.accept("}") {
		switch {
		case p.accept("subgraph"):
			if _, err := p.id(); err != nil {
				return err
			}
			if err := p.block(g, depth+1); err != nil {
				return err
			}
			continue
		case p.accept("node"):
			if _, err := p.attrs(); err != nil {
				return err
			}
		default:
			a, err := p.id()
			if err != nil {
				return err
			}
			switch {
			case p.accept("="):
				v, err := p.id()
				if err != nil {
					return err
				}
				if a.text == "label" && depth == 0 {
					if g.label, err = escString(v.text); err != nil {
						return err
					}
				}
			case p.accept("->"):
				b, err := p.id()
				if err != nil {
					return err
				}
				if p.peek().text == "[" && !p.peek().quoted {
					if _, err := p.attrs(); err != nil {
						return err
					}
				}
				g.edges = append(g.edges, [2]string{a.text, b.text})
			default:
				attrs, err := p.attrs()
				if err != nil {
					return err
				}
				if _, dup := g.nodes[a.text]; dup {
					return fmt.Errorf("node %s declared twice", a.text)
				}
				if g.nodes[a.text], err = escString(attrs["label"].text); err != nil {
					return err
				}
			}
		}
		if err := p.expect(";"); err != nil {
			return err
		}
	}
	return nil
}
