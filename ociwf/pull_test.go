package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"ociwf.dev/ociwf"
)

// TestPullNeverReplacesSilently checks Pull's all-or-nothing install.
func TestPullNeverReplacesSilently(t *testing.T) {
	ctx := context.Background()
	dst := places(t)["oci-layout"]
	b := compileSample(t, "build-test-release.yaml")
	if _, err := ociwf.Push(ctx, dst.Storage, b, "1.0.0", ociwf.PushOptions{}); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	old := filepath.Join(dir, ociwf.PlanTitle)
	if err := os.WriteFile(old, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ociwf.Pull(ctx, dst.Storage, "1.0.0", dir, ociwf.WriteOptions{}); !errors.Is(err, fs.ErrExist) {
		t.Fatalf("pull over an existing file: err = %v, want fs.ErrExist", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("the refused pull left %d entries in the directory, want 1", len(entries))
	}
	if got, _ := os.ReadFile(old); string(got) != "old" {
		t.Fatalf("%s was replaced", old)
	}
	if _, err := ociwf.Pull(ctx, dst.Storage, "1.0.0", dir, ociwf.WriteOptions{Force: true}); err != nil {
		t.Fatalf("pull --force: %v", err)
	}
	if got, _ := os.ReadFile(old); !bytes.Equal(got, b.PlanJSON) {
		t.Fatalf("%s was not replaced", old)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Fatalf("the pull left %d entries in the directory, want 3", len(entries))
	}
}
