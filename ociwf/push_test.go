package ociwf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2"
	"oras.land/oras-go/v2/content/memory"

	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
)

func open(t testing.TB, ref string, layout bool) *target.Target {
	t.Helper()
	o, err := target.New(target.Options{PlainHTTP: true, OCILayout: layout})
	if err != nil {
		t.Fatal(err)
	}
	tg, err := o.Open(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func compileSample(t testing.TB, name string) *ociwf.Build {
	t.Helper()
	b, err := ociwf.Compile(context.Background(), readSample(t, name), ociwf.CompileOptions{File: name})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// places returns a fresh registry repository and a fresh OCI layout to
// publish into.
func places(t *testing.T) map[string]*target.Target {
	host := registrytest.New(t)
	return map[string]*target.Target{
		"registry":   open(t, host+"/workflows/sample", false),
		"oci-layout": open(t, filepath.Join(t.TempDir(), "layout"), true),
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	ctx := context.Background()
	for kind, dst := range places(t) {
		t.Run(kind, func(t *testing.T) {
			for _, name := range offlineSamples {
				b := compileSample(t, name)
				tag := b.Plan.Workflow.Name + "-" + b.Plan.Workflow.Version
				desc, err := ociwf.Push(ctx, dst.Storage, b, tag, ociwf.PushOptions{})
				if err != nil {
					t.Fatalf("push %s: %v", name, err)
				}
				again, err := ociwf.Push(ctx, dst.Storage, b, tag, ociwf.PushOptions{})
				if err != nil {
					t.Fatalf("second push of the same input: %v", err)
				}
				if again.Digest != desc.Digest {
					t.Fatalf("same input published twice: %s then %s", desc.Digest, again.Digest)
				}

				dir := t.TempDir()
				pulled, err := ociwf.Pull(ctx, dst.Storage, tag, dir, ociwf.WriteOptions{})
				if err != nil {
					t.Fatalf("pull: %v", err)
				}
				if pulled.Descriptor.Digest != desc.Digest {
					t.Fatalf("pulled %s, pushed %s", pulled.Descriptor.Digest, desc.Digest)
				}
				for title, want := range map[string][]byte{ociwf.SourceTitle: b.Source, ociwf.PlanTitle: b.PlanJSON, ociwf.SBOMTitle: b.SBOM} {
					got, err := os.ReadFile(filepath.Join(dir, title))
					if err != nil || !bytes.Equal(got, want) {
						t.Errorf("%s: pulled bytes differ from the build (%v)", title, err)
					}
				}
				in, err := ociwf.Inspect(ctx, dst.Storage, desc.Digest.String())
				if err != nil {
					t.Fatal(err)
				}
				if len(in.Tags) != 1 || in.Tags[0] != tag || in.Manifest.ArtifactType != ociwf.ArtifactType {
					t.Errorf("inspect: tags %v, artifactType %q", in.Tags, in.Manifest.ArtifactType)
				}
			}
		})
	}
}

func TestTagsAreWriteOnce(t *testing.T) {
	ctx := context.Background()
	for kind, dst := range places(t) {
		t.Run(kind, func(t *testing.T) {
			first := compileSample(t, "build-test-release.yaml")
			desc, err := ociwf.Push(ctx, dst.Storage, first, "1.0.0", ociwf.PushOptions{})
			if err != nil {
				t.Fatal(err)
			}
			other := compileSample(t, "fan-out-fan-in.yaml")
			_, err = ociwf.Push(ctx, dst.Storage, other, "1.0.0", ociwf.PushOptions{})
			if !errors.Is(err, errdef.ErrImmutable) {
				t.Fatalf("push of other content to an existing tag: err = %v, want ErrImmutable", err)
			}
			var ie *ociwf.ImmutableError
			if !errors.As(err, &ie) || ie.Current.Digest != desc.Digest || !strings.Contains(err.Error(), desc.Digest.String()) {
				t.Fatalf("error does not name the current digest %s: %v", desc.Digest, err)
			}
			cur, err := dst.Storage.Resolve(ctx, "1.0.0")
			if err != nil || cur.Digest != desc.Digest {
				t.Fatalf("tag moved: now %s (%v), want %s", cur.Digest, err, desc.Digest)
			}
			// TagOnce alone refuses too, with the manifest already uploaded.
			mem := memory.New()
			od, err := ociwf.Pack(ctx, mem, other, ociwf.PackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if err := oras.CopyGraph(ctx, mem, dst.Storage, od, oras.DefaultCopyGraphOptions); err != nil {
				t.Fatal(err)
			}
			if err := ociwf.TagOnce(ctx, dst.Storage, mem, od, "1.0.0"); !errors.Is(err, errdef.ErrImmutable) {
				t.Fatalf("TagOnce: err = %v, want ErrImmutable", err)
			}
			if cur, _ := dst.Storage.Resolve(ctx, "1.0.0"); cur.Digest != desc.Digest {
				t.Fatalf("tag moved to %s", cur.Digest)
			}
		})
	}
}

// blobPath is where Distribution's filesystem driver keeps a blob.
func blobPath(root string, d digest.Digest) string {
	return filepath.Join(root, "docker", "registry", "v2", "blobs", d.Algorithm().String(), d.Encoded()[:2], d.Encoded(), "data")
}

func TestPullDetectsTamperedBlobs(t *testing.T) {
	ctx := context.Background()
	cases := map[string]func([]byte) []byte{
		"changed":   func(b []byte) []byte { c := bytes.Clone(b); c[len(c)/2] ^= 0x20; return c },
		"truncated": func(b []byte) []byte { return b[:len(b)-10] },
		"extended":  func(b []byte) []byte { return append(bytes.Clone(b), "\n# extra"...) },
	}
	for name, tamper := range cases {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			dst := open(t, registrytest.NewAt(t, root)+"/workflows/tamper", false)
			b := compileSample(t, "build-test-release.yaml")
			if _, err := ociwf.Push(ctx, dst.Storage, b, "1.4.0", ociwf.PushOptions{}); err != nil {
				t.Fatal(err)
			}
			path := blobPath(root, digest.FromBytes(b.PlanJSON))
			orig, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tamper(orig), 0o644); err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			_, err = ociwf.Pull(ctx, dst.Storage, "1.4.0", dir, ociwf.WriteOptions{})
			if !errors.Is(err, errdef.ErrVerification) {
				t.Fatalf("pull of a tampered plan: err = %v, want ErrVerification", err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("pull left files behind after a failed verification: %v", entries)
			}
		})
	}
}

// pushRaw publishes a hand-made manifest, the way a hostile or foreign
// producer could, and returns its digest.
func pushRaw(t *testing.T, dst oras.Target, artifactType string, layers map[string]string, order []string) ocispec.Descriptor {
	t.Helper()
	ctx := context.Background()
	var descs []ocispec.Descriptor
	for _, title := range order {
		data := []byte(layers[title])
		mt := map[int]string{0: ociwf.SourceMediaType, 1: ociwf.PlanMediaType, 2: ociwf.SBOMMediaType}[len(descs)]
		d, err := oras.PushBytes(ctx, dst, mt, data)
		if err != nil {
			t.Fatal(err)
		}
		d.Annotations = map[string]string{ocispec.AnnotationTitle: title}
		descs = append(descs, d)
	}
	cfg, err := oras.PushBytes(ctx, dst, ociwf.ConfigMediaType, []byte(`{"name":"x","version":"1.0.0","steps":1,"planDigest":""}`))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := oras.PackManifest(ctx, dst, oras.PackManifestVersion1_1, artifactType, oras.PackManifestOptions{Layers: descs, ConfigDescriptor: &cfg})
	if err != nil {
		t.Fatal(err)
	}
	return desc
}

func TestPullRefusesHostileManifests(t *testing.T) {
	ctx := context.Background()
	dst := open(t, registrytest.New(t)+"/workflows/hostile", false)
	cases := map[string]ocispec.Descriptor{
		"path traversal title": pushRaw(t, dst.Storage, ociwf.ArtifactType,
			map[string]string{"../escape.yaml": "a", "plan.json": "b", "sbom.cdx.json": "c"}, []string{"../escape.yaml", "plan.json", "sbom.cdx.json"}),
		"absolute title": pushRaw(t, dst.Storage, ociwf.ArtifactType,
			map[string]string{"/tmp/abs.yaml": "a", "plan.json": "b", "sbom.cdx.json": "c"}, []string{"/tmp/abs.yaml", "plan.json", "sbom.cdx.json"}),
		"repeated title": pushRaw(t, dst.Storage, ociwf.ArtifactType,
			map[string]string{"x": "a"}, []string{"x", "x", "x"}),
		"foreign artifact type": pushRaw(t, dst.Storage, "application/vnd.example.other",
			map[string]string{"a": "a", "b": "b", "c": "c"}, []string{"a", "b", "c"}),
		"missing layer": pushRaw(t, dst.Storage, ociwf.ArtifactType,
			map[string]string{"a": "a", "b": "b"}, []string{"a", "b"}),
	}
	for name, desc := range cases {
		t.Run(name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "out")
			_, err := ociwf.Pull(ctx, dst.Storage, desc.Digest.String(), dir, ociwf.WriteOptions{})
			if !errors.Is(err, errdef.ErrNotWorkflow) {
				t.Fatalf("err = %v, want ErrNotWorkflow", err)
			}
			if entries, _ := os.ReadDir(parent); len(entries) != 0 {
				t.Fatalf("pull wrote %v", entries)
			}
		})
	}
}

func TestCompileResolvesAgainstRegistry(t *testing.T) {
	ctx := context.Background()
	host := registrytest.New(t)
	pinned := map[string]digest.Digest{}
	for _, name := range []string{"build-test-release.yaml", "fan-out-fan-in.yaml"} {
		b := compileSample(t, name)
		dst := open(t, host+"/workflows/"+b.Plan.Workflow.Name, false)
		desc, err := ociwf.Push(ctx, dst.Storage, b, b.Plan.Workflow.Version, ociwf.PushOptions{})
		if err != nil {
			t.Fatal(err)
		}
		pinned[host+"/workflows/"+b.Plan.Workflow.Name] = desc.Digest
	}
	// An "image" in the same registry, referenced by tag.
	img := open(t, host+"/tools/alpine", false)
	imgDesc := pushRaw(t, img.Storage, "application/vnd.example.image", map[string]string{"a": "a"}, []string{"a"})
	if err := img.Storage.Tag(ctx, imgDesc, "3.20"); err != nil {
		t.Fatal(err)
	}

	src := strings.ReplaceAll(string(readSample(t, "nested-uses.yaml")), "127.0.0.1:5001", host)
	src = strings.Replace(src, "image: docker.io/library/alpine:3.20@sha256:54c5b3dd459d5ef778bb2fa1e23a5fb0e1b62ae66970bcb436e8f81a1a1a8e41", "image: "+host+"/tools/alpine:3.20", 1)
	o, err := target.New(target.Options{PlainHTTP: true})
	if err != nil {
		t.Fatal(err)
	}
	b, err := ociwf.Compile(ctx, []byte(src), ociwf.CompileOptions{File: "nested-uses.yaml", Resolver: ociwf.NewRegistryResolver(o)})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, d := range b.Plan.Dependencies {
		got[d.Ref] = d.Pinned
	}
	for repo, dg := range pinned {
		ref := repo + ":" + map[bool]string{true: "1.4.0", false: "2.0.1"}[strings.HasSuffix(repo, "build-test-release")]
		if got[ref] != repo+"@"+dg.String() {
			t.Errorf("uses %s pinned to %q, want %s@%s", ref, got[ref], repo, dg)
		}
	}
	if want := host + "/tools/alpine@" + imgDesc.Digest.String(); got[host+"/tools/alpine:3.20"] != want {
		t.Errorf("image pinned to %q, want %q", got[host+"/tools/alpine:3.20"], want)
	}

	// uses must name an ociwf workflow, not any artifact.
	bad := strings.ReplaceAll(src, host+"/workflows/fan-out-fan-in:2.0.1", host+"/tools/alpine:3.20")
	_, err = ociwf.Compile(ctx, []byte(bad), ociwf.CompileOptions{File: "nested-uses.yaml", Resolver: ociwf.NewRegistryResolver(o)})
	if !errors.Is(err, errdef.ErrNotWorkflow) {
		t.Fatalf("uses of a non-workflow artifact: err = %v, want ErrNotWorkflow", err)
	}
}

// tool finds a pinned stock binary installed by scripts/tools.sh. Under CI
// a missing tool fails the test; elsewhere the test is skipped.
func tool(t *testing.T, name string) string {
	t.Helper()
	if p, err := filepath.Abs(filepath.Join("..", ".tools", "bin", name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not installed: run scripts/tools.sh", name)
	}
	t.Skipf("%s not installed: run scripts/tools.sh", name)
	return ""
}

func TestStockOrasReadsOurArtifact(t *testing.T) {
	oras := tool(t, "oras")
	ctx := context.Background()
	host := registrytest.New(t)
	dst := open(t, host+"/workflows/interop", false)
	b := compileSample(t, "build-test-release.yaml")
	desc, err := ociwf.Push(ctx, dst.Storage, b, "1.4.0", ociwf.PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(oras, args...)
		cmd.Env = append(os.Environ(), "HOME="+t.TempDir())
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("oras %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	dir := t.TempDir()
	run("pull", "--plain-http", "-o", dir, host+"/workflows/interop@"+desc.Digest.String())
	for title, want := range map[string][]byte{ociwf.SourceTitle: b.Source, ociwf.PlanTitle: b.PlanJSON, ociwf.SBOMTitle: b.SBOM} {
		got, err := os.ReadFile(filepath.Join(dir, title))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("oras pull: %s differs from what was pushed (%v)", title, err)
		}
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 3 {
		t.Errorf("oras pull wrote %d files, want 3", len(entries))
	}
	out := run("manifest", "fetch", "--plain-http", host+"/workflows/interop:1.4.0")
	if !bytes.Contains(out, []byte(`"artifactType":"`+ociwf.ArtifactType+`"`)) {
		t.Errorf("oras manifest fetch does not show our artifactType:\n%s", out)
	}
	if digest.FromBytes(out) != desc.Digest {
		t.Errorf("oras manifest fetch returned other bytes than were pushed")
	}
}

func BenchmarkPushPull(b *testing.B) {
	ctx := context.Background()
	dst := open(b, registrytest.New(b)+"/workflows/bench", false)
	build := compileSample(b, "build-test-release.yaml")
	dir := b.TempDir()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		// A new version each round, so every push uploads its manifest and
		// tags a fresh tag; blobs other than the config are shared.
		tag := fmt.Sprintf("v%d", i)
		if _, err := ociwf.Push(ctx, dst.Storage, build, tag, ociwf.PushOptions{}); err != nil {
			b.Fatal(err)
		}
		// Each round replaces the files of the last.
		if _, err := ociwf.Pull(ctx, dst.Storage, tag, dir, ociwf.WriteOptions{Force: true}); err != nil {
			b.Fatal(err)
		}
	}
}
