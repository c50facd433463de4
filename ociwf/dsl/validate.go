package dsl

import (
	"fmt"
	"strings"

	"github.com/distribution/reference"
	"oras.land/oras-go/v2/registry"
)

// validate checks what the structural walk cannot: unique ids, references,
// the dependency graph and conditions.
func validate(p *parser, wf *Workflow) {
	params := make(map[string]*Param, len(wf.Params))
	for i := range wf.Params {
		prm := &wf.Params[i]
		if prm.Name == "" {
			continue
		}
		if prev, dup := params[prm.Name]; dup {
			p.errorAt(prm.Pos, "duplicate param %q (first defined at line %d)", prm.Name, prev.Pos.Line)
			continue
		}
		params[prm.Name] = prm
	}
	if len(wf.Steps) == 0 {
		p.errorAt(Pos{Line: 1, Column: 1}, "a workflow needs at least one step")
		return
	}

	index := make(map[string]int, len(wf.Steps))
	// Steps share few images and workflows: parse each reference once.
	refs := refCache{images: map[string]error{}, uses: map[string]error{}}
	for i := range wf.Steps {
		st := &wf.Steps[i]
		if st.ID == "" {
			continue
		}
		if prev, dup := index[st.ID]; dup {
			p.errorAt(st.Pos, "duplicate step id %q (first defined at line %d)", st.ID, wf.Steps[prev].Pos.Line)
			continue
		}
		index[st.ID] = i
		validateRef(p, st, refs)
		validateOutputs(p, st)
	}

	needs := make([][]int, len(wf.Steps))
	for i := range wf.Steps {
		st := &wf.Steps[i]
		seen := make(map[string]bool, len(st.Needs))
		for _, dep := range st.Needs {
			switch j, ok := index[dep]; {
			case seen[dep]:
				p.errorAt(st.Pos, "step %q lists %q in needs twice", st.ID, dep)
			case dep == st.ID:
				p.errorAt(st.Pos, "step %q needs itself", st.ID)
			case !ok:
				p.errorAt(st.Pos, "step %q needs unknown step %q", st.ID, dep)
			default:
				needs[i] = append(needs[i], j)
			}
			seen[dep] = true
		}
	}
	if len(p.errs) > 0 {
		return
	}
	stages, cycle := topo(needs)
	if cycle != nil {
		names := make([]string, len(cycle))
		for i, idx := range cycle {
			names[i] = wf.Steps[idx].ID
		}
		p.errorAt(wf.Steps[cycle[0]].Pos, "dependency cycle: %s", strings.Join(names, " -> "))
		return
	}
	wf.stages = stages
	checkConditions(p, wf, index, needs)
}

// refCache holds the result of parsing each image and uses reference a
// workflow has.
type refCache struct{ images, uses map[string]error }

func cached(seen map[string]error, ref string, parse func(string) error) error {
	if err, ok := seen[ref]; ok {
		return err
	}
	err := parse(ref)
	seen[ref] = err
	return err
}

func parseImage(ref string) error {
	_, err := reference.ParseNormalizedNamed(ref)
	return err
}

func parseUses(ref string) error {
	_, err := ParseUses(ref)
	return err
}

// validateRef checks the image or uses of st, parsing each reference once
// through refs.
func validateRef(p *parser, st *Step, refs refCache) {
	switch {
	case st.Image != "" && st.Uses != "":
		p.errorAt(st.Pos, "step %q sets both image and uses; set exactly one", st.ID)
	case st.Image == "" && st.Uses == "":
		p.errorAt(st.Pos, "step %q sets neither image nor uses; set exactly one", st.ID)
	case st.Image != "":
		if err := cached(refs.images, st.Image, parseImage); err != nil {
			p.errorAt(st.ImagePos, "step %q: invalid image reference %q: %v", st.ID, st.Image, err)
		}
		if len(st.With) > 0 {
			p.errorAt(st.Pos, "step %q: with is only allowed together with uses", st.ID)
		}
	default:
		if err := cached(refs.uses, st.Uses, parseUses); err != nil {
			p.errorAt(st.ImagePos, "step %q: %v", st.ID, err)
		}
		if st.Run != "" || len(st.Args) > 0 {
			p.errorAt(st.Pos, "step %q: run and args are not allowed with uses; pass values with with", st.ID)
		}
		if len(st.Env) > 0 {
			p.errorAt(st.Pos, "step %q: env is not allowed with uses; pass values with with", st.ID)
		}
		if len(st.Outputs) > 0 {
			p.errorAt(st.Pos, "step %q: outputs are not allowed with uses; a workflow has no outputs", st.ID)
		}
	}
}

// ParseUses parses the OCI reference of a sub-workflow: registry/repository
// with a tag or a digest.
func ParseUses(s string) (registry.Reference, error) {
	ref, err := registry.ParseReference(s)
	if err != nil {
		return ref, fmt.Errorf("invalid workflow reference %q: want registry/repository:tag or registry/repository@sha256:...: %v", s, err)
	}
	if ref.Reference == "" {
		return ref, fmt.Errorf("invalid workflow reference %q: name a tag or a digest", s)
	}
	return ref, nil
}

func validateOutputs(p *parser, st *Step) {
	seen := make(map[string]bool, len(st.Outputs))
	for _, o := range st.Outputs {
		if o.Name == "" {
			continue
		}
		if seen[o.Name] {
			p.errorAt(st.Pos, "step %q declares output %q twice", st.ID, o.Name)
		}
		seen[o.Name] = true
	}
}

// topo layers the graph: a step's stage is one more than the latest stage of
// the steps it needs. It returns a cycle instead when there is one.
func topo(needs [][]int) ([][]int, []int) {
	n := len(needs)
	indeg := make([]int, n)
	dependents := make([][]int, n)
	for i, deps := range needs {
		indeg[i] = len(deps)
		for _, d := range deps {
			dependents[d] = append(dependents[d], i)
		}
	}
	level := make([]int, n)
	queue := make([]int, 0, n)
	for i := 0; i < n; i++ {
		if indeg[i] == 0 {
			queue = append(queue, i)
		}
	}
	maxLevel := 0
	for head := 0; head < len(queue); head++ {
		i := queue[head]
		for _, j := range dependents[i] {
			if level[i]+1 > level[j] {
				level[j] = level[i] + 1
			}
			indeg[j]--
			if indeg[j] == 0 {
				queue = append(queue, j)
				if level[j] > maxLevel {
					maxLevel = level[j]
				}
			}
		}
	}
	if len(queue) < n {
		return nil, findCycle(needs, indeg)
	}
	stages := make([][]int, maxLevel+1)
	for i := 0; i < n; i++ {
		stages[level[i]] = append(stages[level[i]], i)
	}
	return stages, nil
}

// findCycle walks needs among the steps left with unmet dependencies, starting
// from the first in source order, until a step repeats.
func findCycle(needs [][]int, indeg []int) []int {
	start := -1
	for i := range indeg {
		if indeg[i] > 0 {
			start = i
			break
		}
	}
	pos := map[int]int{}
	var path []int
	for cur := start; ; {
		if at, ok := pos[cur]; ok {
			cycle := append([]int{}, path[at:]...)
			// Rotate so the cycle starts at its first step in source order and
			// reads in the direction of the edges: a -> b means a needs b.
			min := 0
			for k := range cycle {
				if cycle[k] < cycle[min] {
					min = k
				}
			}
			cycle = append(cycle[min:], cycle[:min]...)
			return append(cycle, cycle[0])
		}
		pos[cur] = len(path)
		path = append(path, cur)
		next := -1
		for _, d := range needs[cur] {
			if indeg[d] > 0 {
				next = d
				break
			}
		}
		cur = next
	}
}

// ancestors reports whether step a is reachable from step b through needs.
func reachable(needs [][]int, from, to int) bool {
	seen := map[int]bool{from: true}
	stack := []int{from}
	for len(stack) > 0 {
		cur := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, d := range needs[cur] {
			if d == to {
				return true
			}
			if !seen[d] {
				seen[d] = true
				stack = append(stack, d)
			}
		}
	}
	return false
}
