package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf"
)

// bulkArgs reports whether publish's arguments are the bulk form
// FILE|DIR... REPOSITORY-PREFIX: more than two arguments, or a directory
// first.
func bulkArgs(argv []string) bool {
	if len(argv) > 2 {
		return true
	}
	if len(argv) == 2 {
		fi, err := os.Stat(argv[0])
		return err == nil && fi.IsDir()
	}
	return false
}

// workflowFiles expands the FILE|DIR arguments: a directory stands for
// its *.yaml and *.yml files (not its subdirectories), in name order.
func workflowFiles(args []string) ([]string, error) {
	var files []string
	for _, p := range args {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, cli.UsageError{Err: fmt.Errorf("bulk publish takes workflow files or directories, then a repository prefix: %w", err)}
		}
		if !fi.IsDir() {
			files = append(files, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return nil, err
		}
		n := len(files)
		for _, e := range ents {
			if ext := filepath.Ext(e.Name()); !e.IsDir() && (ext == ".yaml" || ext == ".yml") {
				files = append(files, filepath.Join(p, e.Name()))
			}
		}
		if len(files) == n {
			return nil, cli.Usagef("directory %s holds no *.yaml or *.yml workflow file", p)
		}
	}
	return files, nil
}

// bulkItem is one workflow of a bulk publish, as printed.
type bulkItem struct {
	File      string          `json:"file"`
	Reference string          `json:"reference,omitempty"`
	Tag       string          `json:"tag,omitempty"`
	Result    *publish.Result `json:"result,omitempty"`
	Error     string          `json:"error,omitempty"`
	ExitCode  int             `json:"exitCode"`
	err       error
}

// bulkReport is the JSON output of a bulk publish.
type bulkReport struct {
	Workflows []bulkItem `json:"workflows"`
	ExitCode  int        `json:"exitCode"`
}

// severity ranks exit codes: the worst of a bulk publish is its exit code.
func severity(code int) int {
	return slices.Index([]int{cli.ExitOK, cli.ExitError, cli.ExitUsage, cli.ExitVerification, cli.ExitImmutable}, code)
}

// publishBulk publishes every workflow that files name to
// prefix/<metadata.name>:<metadata.version>, all compiled before anything
// is uploaded, with one key and concurrency ceremonies at once.
func (a *app) publishBulk(ctx context.Context, b *buildFlags, s *signerFlags, st storage, lf *publishLifecycleFlags, args []string, prefix string, prov provenance.Options, ann map[string]string, concurrency int) error {
	if lf.supersedes != "" {
		return cli.Usagef("--supersedes names the one version a publish replaces: publish that workflow on its own")
	}
	if prov.WorkflowPath != "" {
		return cli.Usagef("--workflow-path is the path of one FILE: with several, each file's own path is recorded")
	}
	if strings.ContainsAny(prefix, "@") || strings.Contains(prefix[strings.LastIndex(prefix, "/")+1:], ":") {
		return cli.Usagef("the last argument of a bulk publish is a repository prefix (REGISTRY/PATH), without tag or digest: %s", prefix)
	}
	files, err := workflowFiles(args)
	if err != nil {
		return err
	}
	o, err := b.remote.opener(a.Stdin)
	if err != nil {
		return err
	}
	if err := s.check(); err != nil {
		return err
	}
	// The key is decrypted once, while the workflows compile.
	signer := publish.Load(ctx, s.loader(a))
	prov = provenance.FromEnv(os.Getenv, prov)
	prov.ToolVersion = cli.ToolVersion()
	items := make([]publish.Item, len(files))
	seen := map[string]string{}
	for i, f := range files {
		build, err := a.compile(ctx, f, b)
		if err != nil {
			return fmt.Errorf("%s: %w (nothing was published)", f, err)
		}
		w := build.Plan.Workflow
		ref := strings.TrimSuffix(prefix, "/") + "/" + w.Name + ":" + w.Version
		if other, ok := seen[ref]; ok {
			return cli.Usagef("%s and %s both publish %s (nothing was published)", other, f, ref)
		}
		seen[ref] = f
		dst, err := o.Open(ctx, ref)
		if err != nil {
			return fmt.Errorf("%s: %w (nothing was published)", f, err)
		}
		if err := ociwf.ValidateTag(w.Version); err != nil {
			return fmt.Errorf("%s: %w (nothing was published)", f, err)
		}
		p := prov
		p.WorkflowPath = f
		items[i] = publish.Item{Target: dst, Build: build, Options: publish.Options{
			Tag:         w.Version,
			Pack:        ociwf.PackOptions{Source: p.SourceURL(), Revision: p.SourceRevision},
			Provenance:  p,
			Annotations: ann,
			Logger:      a.Logger(),
		}}
	}
	reg, lc, cleanup, err := a.publishRegistry(o, st, lf, s)
	if err != nil {
		return err
	}
	defer cleanup()
	for i := range items {
		items[i].Options.Lifecycle = lc
	}
	// The progress line starts here, not while the workflows compile: the
	// key may be asking for its password on the terminal then.
	publishing := a.Progress("publish", "workflows")
	defer publishing.Done()
	progress := func(done, total, i int, r publish.ItemResult) { publishing.Update(done, total, files[i], r.Err != nil) }
	res := publish.PublishAll(ctx, items, reg, signer, publish.AllOptions{Concurrency: concurrency, Progress: progress})
	publishing.Done()
	rep := bulkReport{Workflows: make([]bulkItem, len(res))}
	var worst error
	failed := 0
	for i, r := range res {
		it := bulkItem{File: files[i], Tag: items[i].Options.Tag, err: r.Err}
		if r.Err != nil {
			failed++
			it.Error, it.ExitCode = r.Err.Error(), cli.ExitCode(r.Err)
			if worst == nil || severity(it.ExitCode) > severity(cli.ExitCode(worst)) {
				worst = r.Err
			}
		} else {
			it.Reference, it.Result = r.Result.Reference, r.Result
		}
		rep.Workflows[i] = it
	}
	rep.ExitCode = cli.ExitCode(worst)
	a.Emit(rep, func(w io.Writer) {
		for _, it := range rep.Workflows {
			if it.err != nil {
				fmt.Fprintf(w, "%s\tFAILED (exit %d): %v\n", it.File, it.ExitCode, it.err)
				continue
			}
			fmt.Fprintf(w, "%s\t%s\n", it.File, it.Reference)
		}
	})
	if worst == nil {
		return nil
	}
	return cli.Reported{Err: fmt.Errorf("%d of %d workflows not published (the others are; rerun to finish, completed ones write nothing new); the worst: %w", failed, len(res), worst)}
}
