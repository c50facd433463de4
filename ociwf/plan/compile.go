package plan

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/distribution/reference"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"ociwf.dev/ociwf/dsl"
	"ociwf.dev/ociwf/errdef"
)

// Resolver pins a dependency reference, as written in a workflow, to a
// digest. Implementations: Offline, and ociwf.RegistryResolver for
// registries.
type Resolver interface {
	Resolve(ctx context.Context, kind Kind, ref string) (Dependency, error)
}

// Offline is the Resolver for --offline compilation: it accepts only
// references already pinned to a digest and never touches the network.
type Offline struct{}

// Resolve pins ref from its own digest, or fails with errdef.ErrNotPinned.
func (Offline) Resolve(_ context.Context, kind Kind, ref string) (Dependency, error) {
	name, dg, err := SplitRef(kind, ref)
	if err != nil {
		return Dependency{}, err
	}
	if dg == "" {
		return Dependency{}, fmt.Errorf("%s %q: %w; pin it as %s@sha256:<digest> or compile without --offline", kind, ref, errdef.ErrNotPinned, ref)
	}
	return Dependency{Kind: kind, Ref: ref, Pinned: name + "@" + dg.String(), Digest: dg.String()}, nil
}

// SplitRef parses a dependency reference into its fully qualified repository
// name (docker.io/library/alpine for alpine) and its digest, if it has one.
func SplitRef(kind Kind, ref string) (string, digest.Digest, error) {
	var named reference.Named
	var err error
	if kind == KindWorkflow {
		if _, err = dsl.ParseUses(ref); err == nil {
			named, err = reference.ParseNamed(ref)
		}
	} else {
		named, err = reference.ParseNormalizedNamed(ref)
	}
	if err != nil {
		return "", "", fmt.Errorf("%s reference %q: %v: %w", kind, ref, err, errdef.ErrInvalid)
	}
	var dg digest.Digest
	if c, ok := named.(reference.Canonical); ok {
		dg = c.Digest()
		if err := dg.Validate(); err != nil {
			return "", "", fmt.Errorf("%s reference %q: %v: %w", kind, ref, err, errdef.ErrInvalid)
		}
	}
	return named.Name(), dg, nil
}

// resolveConcurrency bounds parallel registry look-ups during compilation.
const resolveConcurrency = 8

// Compile builds the plan of a validated workflow whose source bytes are src,
// pinning every image and uses reference through r. The same workflow and the
// same resolutions always give the same plan.
func Compile(ctx context.Context, wf *dsl.Workflow, src []byte, r Resolver) (*Plan, error) {
	type key struct {
		kind Kind
		ref  string
	}
	refs := map[key]*Dependency{}
	for _, st := range wf.Steps {
		k := key{KindImage, st.Image}
		if st.Uses != "" {
			k = key{KindWorkflow, st.Uses}
		}
		refs[k] = nil
	}
	keys := make([]key, 0, len(refs))
	for k := range refs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return lessDep(Dependency{Kind: keys[i].kind, Ref: keys[i].ref}, Dependency{Kind: keys[j].kind, Ref: keys[j].ref})
	})

	var mu sync.Mutex
	failed := map[key]error{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(resolveConcurrency)
	for _, k := range keys {
		g.Go(func() error {
			d, err := r.Resolve(gctx, k.kind, k.ref)
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				d.Kind, d.Ref = k.kind, k.ref
				err = d.check()
			}
			if err != nil {
				failed[k] = err
				return nil
			}
			refs[k] = &d
			return nil
		})
	}
	_ = g.Wait()
	if len(failed) > 0 {
		// Report each failure once, at the first step that uses the reference.
		var list dsl.ErrorList
		for _, st := range wf.Steps {
			k := key{KindImage, st.Image}
			if st.Uses != "" {
				k = key{KindWorkflow, st.Uses}
			}
			if err, ok := failed[k]; ok {
				list = append(list, &dsl.Error{File: wf.File, Line: st.ImagePos.Line, Column: st.ImagePos.Column,
					Msg: fmt.Sprintf("step %q: %v", st.ID, err), Err: err})
				delete(failed, k)
			}
		}
		return nil, list
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if list := checkWith(wf, func(uses string) *Dependency { return refs[key{KindWorkflow, uses}] }); len(list) > 0 {
		return nil, list
	}

	p := &Plan{
		APIVersion: APIVersion,
		Workflow: Workflow{
			Name:        wf.Metadata.Name,
			Version:     wf.Metadata.Version,
			Description: wf.Metadata.Description,
			Labels:      wf.Metadata.Labels,
		},
		Source: Source{Digest: digest.FromBytes(src).String(), Size: int64(len(src))},
		Stages: wf.Stages(),
	}
	for _, k := range keys {
		p.Dependencies = append(p.Dependencies, *refs[k])
	}
	for _, prm := range wf.Params {
		p.Params = append(p.Params, Param{
			Name: prm.Name, Type: string(prm.Type), Description: prm.Description,
			Required: prm.Required, Default: prm.Default, Enum: prm.Enum,
		})
	}
	index := make(map[string]int, len(wf.Steps))
	for i := range wf.Steps {
		index[wf.Steps[i].ID] = i
	}
	// Steps are ordered by stage, then by id, as the stages list them.
	p.Steps = make([]Step, 0, len(wf.Steps))
	for stage, ids := range p.Stages {
		for _, id := range ids {
			st := &wf.Steps[index[id]]
			ps := Step{
				ID: st.ID, Stage: stage, With: st.With, Run: st.Run, Args: st.Args,
				Env: st.Env, Retries: st.Retries, Needs: sorted(st.Needs),
			}
			if st.Uses != "" {
				ps.Uses = refs[key{KindWorkflow, st.Uses}].Pinned
			} else {
				ps.Image = refs[key{KindImage, st.Image}].Pinned
			}
			if st.When != "" {
				ps.When = &Condition{Expr: strings.TrimSpace(st.When), Vars: st.WhenVars}
			}
			if st.Timeout > 0 {
				ps.Timeout = st.Timeout.String()
			}
			for _, o := range st.Outputs {
				ps.Outputs = append(ps.Outputs, Output{Name: o.Name, Type: string(o.Type), Description: o.Description})
			}
			p.Steps = append(p.Steps, ps)
		}
	}
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("compile: %w", err)
	}
	return p, nil
}

// checkWith checks the with of every step that uses a sub-workflow whose
// interface the resolver read against that sub-workflow's params, and
// reports each problem at the with key, value or uses it is about.
func checkWith(wf *dsl.Workflow, dep func(uses string) *Dependency) dsl.ErrorList {
	var list dsl.ErrorList
	for _, st := range wf.Steps {
		if st.Uses == "" {
			continue
		}
		iface := dep(st.Uses).Workflow
		if iface == nil {
			continue
		}
		_, probs := bindParams(iface.Params, st.With)
		of := "workflow " + iface.Name + " " + iface.Version
		for _, pr := range probs {
			var pos dsl.Pos
			var msg string
			switch pr.kind {
			case problemUnknown:
				names := make([]string, len(iface.Params))
				for i, prm := range iface.Params {
					names[i] = prm.Name
				}
				its := "it has no params"
				if len(names) > 0 {
					its = "its params: " + strings.Join(names, ", ")
				}
				pos, msg = st.WithKeys[pr.param], fmt.Sprintf("with: %s has no param %q (%s)", of, pr.param, its)
			case problemMissing:
				pos, msg = st.WithPos, fmt.Sprintf("with: %s requires param %q", of, pr.param)
				if pos.Line == 0 {
					pos = st.ImagePos
				}
			case problemValue:
				pos, msg = st.WithValues[pr.param], fmt.Sprintf("with.%s: %s for param %s of %s", pr.param, pr.msg, pr.param, of)
			default:
				pos, msg = st.WithValues[pr.param], fmt.Sprintf("with.%s: %s (param %s of %s)", pr.param, pr.msg, pr.param, of)
			}
			list = append(list, &dsl.Error{File: wf.File, Line: pos.Line, Column: pos.Column, Msg: fmt.Sprintf("step %q: %s", st.ID, msg)})
		}
	}
	list.Sort()
	if len(list) > dsl.MaxErrors {
		list = list[:dsl.MaxErrors]
	}
	return list
}

func sorted(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
