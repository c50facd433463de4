// Package graph renders a compiled plan's DAG as a Mermaid flowchart or a
// Graphviz DOT graph: one box per step, grouped by stage, an edge from
// each step a step needs to it, the step's when condition in its label
// (and its incoming edges dashed, since it may be skipped), and a uses
// step drawn as a sub-workflow with its pinned reference.
//
// The output is deterministic: stages in order, steps by id within a
// stage, edges in the order of their targets and then of their sources.
// Every text taken from the plan (step ids, references, conditions, the
// workflow's name) is escaped for the format, so that no id, quote,
// bracket or newline in it changes the graph's structure; nodes are
// named s0, s1, ... rather than by step id, so no id can be a keyword of
// either language.
package graph

import (
	"bufio"
	"cmp"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/plan"
)

// Format is a graph language.
type Format string

// The formats Render writes.
const (
	// Mermaid is a Mermaid flowchart (mermaid.js.org), as GitHub and
	// GitLab render in Markdown.
	Mermaid Format = "mermaid"
	// DOT is a Graphviz graph (graphviz.org), for dot -Tsvg.
	DOT Format = "dot"
)

// Formats are the formats Render writes, in the order help lists them.
func Formats() []Format { return []Format{Mermaid, DOT} }

// Render writes p's DAG to w in format f. An unknown format, or a plan
// whose steps need steps it does not have, is an error wrapping
// errdef.ErrInvalid; nothing is written then.
func Render(w io.Writer, p *plan.Plan, f Format) error {
	write := map[Format]func(*bufio.Writer, *graph){Mermaid: writeMermaid, DOT: writeDOT}[f]
	if write == nil {
		return fmt.Errorf("graph format %q: the formats are %s and %s: %w", f, Mermaid, DOT, errdef.ErrInvalid)
	}
	g, err := layout(p)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(w)
	write(bw, g)
	return bw.Flush()
}

// node is a step placed in the graph.
type node struct {
	name string // s0, s1, ...
	step *plan.Step
}

// edge runs from a needed step to the step that needs it.
type edge struct {
	from, to    *node
	conditional bool // the target has a when condition
}

// graph is a plan laid out for rendering.
type graph struct {
	title  string
	stages [][]*node
	edges  []edge
}

// layout groups p's steps by stage, sorted by id within each, names the
// nodes in that order and lists the edges by target, then source.
func layout(p *plan.Plan) (*graph, error) {
	steps := make([]*plan.Step, len(p.Steps))
	for i := range p.Steps {
		steps[i] = &p.Steps[i]
	}
	slices.SortStableFunc(steps, func(a, b *plan.Step) int {
		return cmp.Or(cmp.Compare(a.Stage, b.Stage), strings.Compare(a.ID, b.ID))
	})
	g := &graph{title: strings.TrimSpace(p.Workflow.Name + " " + p.Workflow.Version)}
	byID := make(map[string]*node, len(steps))
	for i, s := range steps {
		if _, dup := byID[s.ID]; dup {
			return nil, fmt.Errorf("graph: two steps have the id %q: %w", s.ID, errdef.ErrInvalid)
		}
		n := &node{name: "s" + strconv.Itoa(i), step: s}
		byID[s.ID] = n
		if k := len(g.stages); k == 0 || g.stages[k-1][0].step.Stage != s.Stage {
			g.stages = append(g.stages, nil)
		}
		g.stages[len(g.stages)-1] = append(g.stages[len(g.stages)-1], n)
	}
	for _, stage := range g.stages {
		for _, to := range stage {
			needs := slices.Clone(to.step.Needs)
			slices.Sort(needs)
			for _, id := range slices.Compact(needs) {
				from, ok := byID[id]
				if !ok {
					return nil, fmt.Errorf("graph: step %q needs %q, which the plan does not have: %w", to.step.ID, id, errdef.ErrInvalid)
				}
				g.edges = append(g.edges, edge{from: from, to: to, conditional: to.step.When != nil})
			}
		}
	}
	return g, nil
}

// labelLines are the lines of a step's label: its id, what it uses, its
// condition.
func labelLines(s *plan.Step) []string {
	lines := []string{s.ID}
	if s.Uses != "" {
		lines = append(lines, "uses "+s.Uses)
	}
	if s.When != nil {
		lines = append(lines, "when "+s.When.Expr)
	}
	return lines
}

func writeMermaid(w *bufio.Writer, g *graph) {
	w.WriteString("flowchart LR\n")
	if g.title != "" {
		// A comment, on one line and without a %: no directive.
		fmt.Fprintf(w, "  %%%% workflow %s\n", strings.ReplaceAll(oneLine(g.title), "%", " "))
	}
	for i, stage := range g.stages {
		fmt.Fprintf(w, "  subgraph stage%d [\"stage %d\"]\n", i, stage[0].step.Stage)
		for _, n := range stage {
			parts := labelLines(n.step)
			for j, l := range parts {
				parts[j] = mermaidText(l)
			}
			label := `"` + strings.Join(parts, "<br/>") + `"`
			if n.step.Uses != "" {
				fmt.Fprintf(w, "    %s[[%s]]\n", n.name, label) // a subroutine: a sub-workflow
			} else {
				fmt.Fprintf(w, "    %s[%s]\n", n.name, label)
			}
		}
		w.WriteString("  end\n")
	}
	var conditional []string
	for _, stage := range g.stages {
		for _, n := range stage {
			if n.step.When != nil {
				conditional = append(conditional, n.name)
			}
		}
	}
	for _, e := range g.edges {
		arrow := "-->"
		if e.conditional {
			arrow = "-.->"
		}
		fmt.Fprintf(w, "  %s %s %s\n", e.from.name, arrow, e.to.name)
	}
	if len(conditional) > 0 {
		w.WriteString("  classDef conditional stroke-dasharray: 5 5\n")
		fmt.Fprintf(w, "  class %s conditional\n", strings.Join(conditional, ","))
	}
}

// mermaidText escapes s for a double-quoted Mermaid label: a quote cannot
// be escaped with a backslash there, so it and every character with a
// meaning of its own in a label (entity codes start with #, labels are
// HTML, a leading backtick starts a Markdown string) become entity codes;
// a line break becomes <br/>, other control characters spaces. Mermaid
// reads %%{...}%% as a directive anywhere in the text, so % is a code
// too.
func mermaidText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString("#quot;")
		case r == '#':
			b.WriteString("#35;")
		case r == '%':
			b.WriteString("#37;") // %%{...}%% anywhere is a directive
		case r == '&':
			b.WriteString("#amp;")
		case r == '<':
			b.WriteString("#lt;")
		case r == '>':
			b.WriteString("#gt;")
		case r == '`':
			b.WriteString("#96;")
		case r == '\n':
			b.WriteString("<br/>")
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

func writeDOT(w *bufio.Writer, g *graph) {
	w.WriteString("digraph plan {\n")
	if g.title != "" {
		fmt.Fprintf(w, "  label=%s;\n  labelloc=t;\n", dotString(g.title))
	}
	w.WriteString("  rankdir=LR;\n  node [shape=box, style=rounded];\n")
	for i, stage := range g.stages {
		fmt.Fprintf(w, "  subgraph cluster_stage%d {\n    label=%s;\n", i, dotString("stage "+strconv.Itoa(stage[0].step.Stage)))
		for _, n := range stage {
			attrs := []string{"label=" + dotString(strings.Join(labelLines(n.step), "\n"))}
			if n.step.Uses != "" {
				attrs = append(attrs, "shape=component") // a sub-workflow
			}
			if n.step.When != nil {
				attrs = append(attrs, `style="rounded,dashed"`)
			}
			fmt.Fprintf(w, "    %s [%s];\n", n.name, strings.Join(attrs, ", "))
		}
		w.WriteString("  }\n")
	}
	for _, e := range g.edges {
		if e.conditional {
			fmt.Fprintf(w, "  %s -> %s [style=dashed];\n", e.from.name, e.to.name)
		} else {
			fmt.Fprintf(w, "  %s -> %s;\n", e.from.name, e.to.name)
		}
	}
	w.WriteString("}\n")
}

// dotString quotes s as a DOT string used as a label (an escString): a
// backslash and a quote are escaped (so no \N, \G or \l of Graphviz's is
// read from the text), a line break becomes \n, other control characters
// spaces.
func dotString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '\\':
			b.WriteString(`\\`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\n':
			b.WriteString(`\n`)
		case r < 0x20 || r == 0x7f:
			b.WriteByte(' ')
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// oneLine replaces the control characters of s, line breaks included,
// with spaces.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}
