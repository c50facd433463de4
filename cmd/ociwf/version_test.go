package main

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
)

// versionKeys are the keys every version report has (stable JSON).
var versionKeys = []string{"name", "version", "commit", "commitTime", "modified", "goVersion", "platform", "modules", "extensions"}

// checkVersionJSON decodes a version report, fails t unless every key is
// there, and returns it.
func checkVersionJSON(t *testing.T, raw []byte) cli.Version {
	t.Helper()
	var keys map[string]json.RawMessage
	var v cli.Version
	if err := json.Unmarshal(raw, &keys); err != nil {
		t.Fatalf("version --output json: %v\n%s", err, raw)
	}
	for _, k := range versionKeys {
		if _, ok := keys[k]; !ok {
			t.Errorf("version report has no %q: %s", k, raw)
		}
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func moduleNames(ms []cli.Module) []string {
	var names []string
	for _, m := range ms {
		if m.Version == "" || m.Path == "" {
			continue
		}
		names = append(names, m.Name)
	}
	return names
}

// ociwf version reports its own build, the libraries it links, and the
// ociwf-registry it hands over to (TestMain built one and put it on
// PATH), with that binary's own report: Distribution is linked there, not
// in ociwf.
func TestVersion(t *testing.T) {
	stdout, stderr, code := runCLI(t, "version", "--output", "json")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	v := checkVersionJSON(t, []byte(stdout))
	if v.Name != "ociwf" || v.Version != "(devel)" || !strings.HasPrefix(v.GoVersion, "go") || v.Platform == "" {
		t.Errorf("version report %+v", v)
	}
	if names := moduleNames(v.Modules); !slices.Equal(names, []string{"oras-go", "cosign", "sigstore-go"}) {
		t.Errorf("ociwf lists %q, want oras-go, cosign and sigstore-go (and no Distribution)", names)
	}
	if len(v.Extensions) != 1 {
		t.Fatalf("extensions %+v, want ociwf-registry", v.Extensions)
	}
	reg := v.Extensions[0]
	if reg.Name != registryBinary || !reg.Installed || reg.Path == "" || reg.Error != "" || reg.Version == nil {
		t.Fatalf("ociwf-registry: %+v", reg)
	}
	names := moduleNames(reg.Version.Modules)
	if reg.Version.Name != registryBinary || !slices.Contains(names, "distribution") || !slices.Contains(names, "oras-go") {
		t.Errorf("ociwf-registry's report %+v lists %q, not Distribution", reg.Version, names)
	}
	text, _, code := runCLI(t, "version")
	for _, want := range []string{"ociwf (devel)\n", "  commit ", "  go ", "  oras-go ", "  cosign ", "  sigstore-go ", "ociwf-registry ", "  distribution "} {
		if code != cli.ExitOK || !strings.Contains(text, want) {
			t.Errorf("version: exit %d, no %q in\n%s", code, want, text)
		}
	}
}

// A built ociwf finds the ociwf-registry beside it, PATH or not, and
// records its VCS commit when built in a clone.
func TestVersionOfABuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds ociwf")
	}
	reg, err := exec.LookPath(registryBinary)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	beside := filepath.Join(dir, registryBinary)
	if err := os.Symlink(reg, beside); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "ociwf")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "version", "--output", "json")
	cmd.Env = append(os.Environ(), "PATH="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ociwf version: %v", err)
	}
	v := checkVersionJSON(t, out)
	if v.Version == "" || v.Commit != "" && len(v.Commit) != 40 || len(moduleNames(v.Modules)) != 3 {
		t.Errorf("version %q, commit %q, modules %+v", v.Version, v.Commit, v.Modules)
	}
	if len(v.Extensions) != 1 || v.Extensions[0].Path != beside || v.Extensions[0].Version == nil {
		t.Errorf("extensions %+v; want the ociwf-registry at %s", v.Extensions, beside)
	}
}

// Without ociwf-registry, ociwf version says it is not installed, and
// still exits 0.
func TestVersionWithoutRegistry(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	stdout, stderr, code := runCLI(t, "version", "--output", "json")
	if code != cli.ExitOK {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	v := checkVersionJSON(t, []byte(stdout))
	if len(v.Extensions) != 1 || v.Extensions[0].Installed || v.Extensions[0].Version != nil || v.Extensions[0].Error != "" {
		t.Fatalf("extensions %+v; want ociwf-registry not installed", v.Extensions)
	}
	if !strings.Contains(stdout, `"version": null`) {
		t.Errorf("the missing registry's version is not null:\n%s", stdout)
	}
	text, _, _ := runCLI(t, "version")
	if !strings.Contains(text, "ociwf-registry not installed\n") {
		t.Errorf("version:\n%s", text)
	}
}
