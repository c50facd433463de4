package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// variants writes n copies of build-test-release.yaml into a new directory,
// each with its own metadata.name (wf-<i>) and version (1.<i>.0).
func variants(t *testing.T, n int) string {
	t.Helper()
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for i := range n {
		s := strings.Replace(string(src), "name: build-test-release", fmt.Sprintf("name: wf-%d", i), 1)
		s = strings.Replace(s, "version: 1.4.0", fmt.Sprintf("version: 1.%d.0", i), 1)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("wf-%d.yaml", i)), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

type bulkJSON struct {
	Workflows []struct {
		File, Reference, Tag, Error string
		ExitCode                    int
	}
	ExitCode int
}

func TestPublishBulk(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	dir := variants(t, 3)
	prefix := host + "/bulk"

	// Files named one by one.
	files := []string{filepath.Join(dir, "wf-0.yaml"), filepath.Join(dir, "wf-1.yaml")}
	out, stderr, code := runCLI(t, append(append([]string{"publish", "--plain-http", "--offline", "--key", keys + ".key"}, files...), prefix)...)
	if code != 0 || strings.Count(out, "\n") != 2 || !strings.Contains(out, prefix+"/wf-0@sha256:") || !strings.Contains(out, prefix+"/wf-1@sha256:") {
		t.Fatalf("bulk of files: exit %d\n%s%s", code, out, stderr)
	}
	// The directory: the two above again (nothing new) and the third.
	out, stderr, code = runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", "--output", "json", dir, prefix)
	var res bulkJSON
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || len(res.Workflows) != 3 {
		t.Fatalf("bulk of a directory: exit %d\n%s%s", code, out, stderr)
	}
	for i, w := range res.Workflows {
		if w.Error != "" || !strings.HasPrefix(w.Reference, fmt.Sprintf("%s/wf-%d@sha256:", prefix, i)) || w.Tag != fmt.Sprintf("1.%d.0", i) {
			t.Fatalf("workflow %d: %+v", i, w)
		}
		if got := resolve(t, repository(t, fmt.Sprintf("%s/wf-%d", prefix, i)), w.Tag); "/wf-"+fmt.Sprint(i)+"@"+got.String() != strings.TrimPrefix(w.Reference, prefix) {
			t.Fatalf("workflow %d: tag names %s, reference %s", i, got, w.Reference)
		}
	}
	if out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", "--require-signed-tag", prefix+"/wf-2:1.2.0"); code != 0 {
		t.Fatalf("verify: exit %d\n%s%s", code, out, stderr)
	}
}

// A malformed file fails a bulk publish before anything is uploaded.
func TestPublishBulkMalformedPushesNothing(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	dir := variants(t, 2)
	if err := os.WriteFile(filepath.Join(dir, "zz-bad.yaml"), []byte("apiVersion: ociwf.dev/v1\nkind: Workflow\nmetadata: [\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := host + "/bulk"
	out, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", dir, prefix)
	if code == 0 || !strings.Contains(stderr, "zz-bad.yaml") || !strings.Contains(stderr, "nothing was published") {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for i := range 2 {
		if got := resolve(t, repository(t, fmt.Sprintf("%s/wf-%d", prefix, i)), fmt.Sprintf("1.%d.0", i)); got != "" {
			t.Fatalf("wf-%d was tagged %s", i, got)
		}
		if out, _, code := runCLI(t, "pull", "--plain-http", "--key", keys+".pub", fmt.Sprintf("%s/wf-%d:1.%d.0", prefix, i, i), "-o", t.TempDir()); code == 0 {
			t.Fatalf("wf-%d can be pulled: %s", i, out)
		}
	}
}

// One workflow whose tag already names other content fails alone, exit 4;
// the others are published.
func TestPublishBulkImmutableItem(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	dir := variants(t, 3)
	prefix := host + "/bulk"
	// wf-1:1.1.0 already names other content.
	pushDraft(t, "fan-out-fan-in.yaml", prefix+"/wf-1:1.1.0")
	out, stderr, code := runCLI(t, "publish", "--plain-http", "--offline", "--key", keys+".key", "--output", "json", "--concurrency", "3", dir, prefix)
	var res bulkJSON
	if code != cli.ExitImmutable || json.Unmarshal([]byte(out), &res) != nil || len(res.Workflows) != 3 || res.ExitCode != cli.ExitImmutable {
		t.Fatalf("exit %d\n%s%s", code, out, stderr)
	}
	for i, w := range res.Workflows {
		if i == 1 {
			if w.ExitCode != cli.ExitImmutable || w.Reference != "" {
				t.Fatalf("the taken workflow: %+v", w)
			}
			continue
		}
		if w.Error != "" || w.Reference == "" {
			t.Fatalf("workflow %d: %+v", i, w)
		}
	}
}

// TestDocsBulkPublishExamples runs every ociwf command of the Bulk publish
// section of docs/operations.md, in order, and checks each exit code.
func TestDocsBulkPublishExamples(t *testing.T) {
	page := docSection(t, "../../docs/operations.md", "Bulk publish", 4)
	vars := map[string]string{"REG": registrytest.New(t)}
	runDocCommands(t, "docs/operations.md Bulk publish", page, vars, nil)
}
