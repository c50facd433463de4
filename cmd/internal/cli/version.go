package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
)

// Version is what a binary's version command reports: the module version
// it was built from, the VCS commit, the Go toolchain, the versions of the
// libraries it links that a bug report needs, and the extensions it hands
// commands over to. Its JSON form (version --output json) is stable: every
// key is always present, empty when the build recorded nothing for it.
type Version struct {
	// Name is the binary's name: ociwf or ociwf-registry.
	Name string `json:"name"`
	// Version is the module version: a release tag for go install
	// MODULE@VERSION, a pseudo-version for a build in a clone, and
	// "(devel)" when the build recorded none (go run, go test).
	Version string `json:"version"`
	// Commit is the VCS revision the binary was built from; empty when
	// the build recorded none.
	Commit string `json:"commit"`
	// CommitTime is the time of Commit (RFC 3339); empty without one.
	CommitTime string `json:"commitTime"`
	// Modified tells that the work tree had uncommitted changes.
	Modified bool `json:"modified"`
	// GoVersion is the Go toolchain that built the binary.
	GoVersion string `json:"goVersion"`
	// Platform is GOOS/GOARCH.
	Platform string `json:"platform"`
	// Modules are the libraries of KnownModules the binary links, in
	// that order; empty when the build recorded none (the test binary of
	// a package that is not a command).
	Modules []Module `json:"modules"`
	// Extensions are the binaries this one hands commands over to, each
	// with its own version when it is installed.
	Extensions []ExtensionVersion `json:"extensions"`
}

// Module is one linked module's version.
type Module struct {
	// Name is the module's short name: oras-go, cosign, ...
	Name string `json:"name"`
	// Path is the module path.
	Path string `json:"path"`
	// Version is the version linked.
	Version string `json:"version"`
	// Replace is the module that replaced it ("PATH VERSION"), set only
	// when the build replaced it.
	Replace string `json:"replace,omitempty"`
}

// ExtensionVersion is what the version command found of an extension.
type ExtensionVersion struct {
	// Name is the extension's binary name.
	Name string `json:"name"`
	// Installed tells that the binary was found.
	Installed bool `json:"installed"`
	// Path is where it was found; empty when it was not.
	Path string `json:"path"`
	// Error says why its version could not be read; empty when it was,
	// or when the binary is not installed.
	Error string `json:"error"`
	// Version is its own version report; null when it could not be read.
	Version *Version `json:"version"`
}

// Extension is a binary that a command of another one hands over to.
type Extension struct {
	// Name is the binary's name.
	Name string
	// Find returns the binary's path, or an error wrapping
	// ErrNotInstalled when there is none.
	Find func() (string, error)
	// Timeout bounds running "NAME version --output json"; zero means
	// ExtensionTimeout.
	Timeout time.Duration
}

// ErrNotInstalled reports an extension binary that is not installed.
var ErrNotInstalled = errors.New("not installed")

// ExtensionTimeout bounds reading an extension's version: a binary that
// has not answered by then is reported as such, not waited for.
const ExtensionTimeout = 5 * time.Second

// KnownModules are the modules a version report lists when the binary
// links them, by short name: the registry client, the signature and
// verification libraries, and the registry.
func KnownModules() []Module {
	return []Module{
		{Name: "oras-go", Path: "oras.land/oras-go/v2"},
		{Name: "cosign", Path: "github.com/sigstore/cosign/v2"},
		{Name: "sigstore-go", Path: "github.com/sigstore/sigstore-go"},
		{Name: "distribution", Path: "github.com/distribution/distribution/v3"},
	}
}

// BuildVersion is the version report of the running binary, named name,
// read from the build information Go embeds in it; it lists no
// extensions.
func BuildVersion(name string) Version {
	v := Version{
		Name: name, Version: "(devel)", GoVersion: runtime.Version(),
		Platform: runtime.GOOS + "/" + runtime.GOARCH,
		Modules:  []Module{}, Extensions: []ExtensionVersion{},
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	if bi.Main.Version != "" {
		v.Version = bi.Main.Version
	}
	if bi.GoVersion != "" {
		v.GoVersion = bi.GoVersion
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.Commit = s.Value
		case "vcs.time":
			v.CommitTime = s.Value
		case "vcs.modified":
			v.Modified = s.Value == "true"
		}
	}
	linked := map[string]*debug.Module{}
	for _, d := range bi.Deps {
		linked[d.Path] = d
	}
	for _, m := range KnownModules() {
		d, ok := linked[m.Path]
		if !ok {
			continue
		}
		m.Version = d.Version
		if r := d.Replace; r != nil {
			m.Replace = strings.TrimSpace(r.Path + " " + r.Version)
		}
		v.Modules = append(v.Modules, m)
	}
	return v
}

// ToolVersion is the module version the binary was built from, "(devel)"
// when the build recorded none.
func ToolVersion() string { return BuildVersion("").Version }

// ReadExtension finds e and reads its version by running
// "PATH version --output json", bounded by e.Timeout. What went wrong is
// in the result's Error, not returned: a version report lists a broken
// extension rather than failing.
func ReadExtension(ctx context.Context, e Extension) ExtensionVersion {
	ev := ExtensionVersion{Name: e.Name}
	path, err := e.Find()
	if err != nil {
		if !errors.Is(err, ErrNotInstalled) {
			ev.Error = err.Error()
		}
		return ev
	}
	ev.Installed, ev.Path = true, path
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = ExtensionTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var stdout, stderr bytes.Buffer
	c := exec.CommandContext(ctx, path, "version", "--output", "json")
	c.Stdout, c.Stderr = &stdout, &stderr
	// A child that leaves the output open behind it is not waited for.
	c.WaitDelay = time.Second
	err = c.Run()
	switch {
	case ctx.Err() != nil:
		ev.Error = fmt.Sprintf("%s version: no answer within %s", path, timeout)
		return ev
	case err != nil:
		ev.Error = fmt.Sprintf("%s version: %v", path, err)
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			ev.Error += ": " + firstLine(msg)
		}
		return ev
	}
	var v Version
	if err := json.Unmarshal(stdout.Bytes(), &v); err != nil || v.Name == "" {
		ev.Error = fmt.Sprintf("%s version --output json printed no version report (%q)", path, firstLine(stdout.String()))
		return ev
	}
	ev.Version = &v
	return ev
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// VersionCmd is the version command of the binary named name, which hands
// commands over to the extensions exts: it reports the binary's version
// and each extension's.
func (a *App) VersionCmd(name string, exts ...Extension) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the " + name + " version and the versions of the libraries it links",
		Long: `Version prints the module version ` + name + ` was built from, its VCS commit
(and whether the work tree was modified), the Go toolchain, and the
versions of the libraries it links that a bug report needs.` + extensionsLong(exts) + `
With --output json it prints one object whose keys are always present.`,
		Example: "  " + name + " version\n  " + name + " version --output json",
		Args:    Args(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, _ []string) error {
			v := BuildVersion(name)
			for _, e := range exts {
				v.Extensions = append(v.Extensions, ReadExtension(cmd.Context(), e))
			}
			a.Emit(v, func(w io.Writer) { writeVersion(w, v) })
			return nil
		},
	}
}

func extensionsLong(exts []Extension) string {
	if len(exts) == 0 {
		return ""
	}
	names := make([]string, len(exts))
	for i, e := range exts {
		names[i] = e.Name
	}
	return `
It also reports ` + strings.Join(names, ", ") + `, the binary it hands commands
over to, as that binary's own "version --output json" reports it, or that
it is not installed.`
}

// writeVersion prints v as text: the binary and its version, then its
// details indented, then each extension likewise.
func writeVersion(w io.Writer, v Version) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var report func(v Version, where string)
	report = func(v Version, where string) {
		fmt.Fprintf(tw, "%s %s%s\n", v.Name, v.Version, where)
		commit := "unknown"
		if v.Commit != "" {
			commit = v.Commit
			if v.CommitTime != "" {
				commit += " " + v.CommitTime
			}
			if v.Modified {
				commit += " (modified)"
			}
		}
		fmt.Fprintf(tw, "  commit\t%s\n", commit)
		fmt.Fprintf(tw, "  go\t%s %s\n", v.GoVersion, v.Platform)
		if len(v.Modules) == 0 {
			fmt.Fprintf(tw, "  modules\tnot recorded in this build\n")
		}
		for _, m := range v.Modules {
			line := m.Version
			if m.Replace != "" {
				line += " => " + m.Replace
			}
			fmt.Fprintf(tw, "  %s\t%s\n", m.Name, line)
		}
		for _, e := range v.Extensions {
			switch {
			case !e.Installed && e.Error == "":
				fmt.Fprintf(tw, "%s not installed\n", e.Name)
			case e.Version == nil:
				fmt.Fprintf(tw, "%s unknown version: %s\n", e.Name, e.Error)
			default:
				report(*e.Version, " ("+e.Path+")")
			}
		}
	}
	report(v, "")
	tw.Flush()
}
