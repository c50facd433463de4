package main

// Tests of the deployment files under docs/deploy: the Kubernetes
// manifests and the systemd unit start this binary with their own
// arguments and configuration, the paths they mount or keep state in
// moved under a temporary directory and the listeners on loopback, and the
// health endpoint their probes name answers.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registryext"
)

const deployDir = "../../docs/deploy/"

// k8sObject is the part of a Kubernetes object the test reads.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct{ Name string }
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Replicas *int `yaml:"replicas"`
		Template struct {
			Spec struct {
				SecurityContext struct {
					RunAsNonRoot *bool `yaml:"runAsNonRoot"`
					RunAsUser    *int  `yaml:"runAsUser"`
				} `yaml:"securityContext"`
				Containers []k8sContainer `yaml:"containers"`
				Volumes    []struct {
					Name                  string
					ConfigMap             *struct{ Name string } `yaml:"configMap"`
					PersistentVolumeClaim *struct {
						ClaimName string `yaml:"claimName"`
					} `yaml:"persistentVolumeClaim"`
					EmptyDir any `yaml:"emptyDir"`
				} `yaml:"volumes"`
			}
		}
		Ports []struct {
			Port       int
			TargetPort string `yaml:"targetPort"`
		}
	}
}

type k8sContainer struct {
	Image string
	Args  []string
	Env   []struct {
		Name      string
		ValueFrom struct {
			SecretKeyRef struct{ Name, Key string } `yaml:"secretKeyRef"`
		} `yaml:"valueFrom"`
	}
	Ports []struct {
		Name          string
		ContainerPort int `yaml:"containerPort"`
	}
	ReadinessProbe, LivenessProbe, StartupProbe *struct {
		HTTPGet struct {
			Path string
			Port string
		} `yaml:"httpGet"`
	} `yaml:"-"`
	Probes          map[string]any `yaml:",inline"`
	SecurityContext struct {
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		Capabilities             struct{ Drop []string }
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string
		MountPath string `yaml:"mountPath"`
		ReadOnly  bool   `yaml:"readOnly"`
	} `yaml:"volumeMounts"`
}

// probes returns the HTTP paths and ports of c's probes, by probe.
func (c *k8sContainer) probes(t *testing.T) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	for _, p := range []string{"readinessProbe", "livenessProbe", "startupProbe"} {
		raw, ok := c.Probes[p]
		if !ok {
			continue
		}
		b, _ := yaml.Marshal(raw)
		var pr struct {
			HTTPGet struct{ Path, Port string } `yaml:"httpGet"`
		}
		if err := yaml.Unmarshal(b, &pr); err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		out[p] = [2]string{pr.HTTPGet.Path, pr.HTTPGet.Port}
	}
	return out
}

// serveArgs starts `ociwf-registry` in-process with args until the test
// ends and returns the address it serves on; args must be a serve command.
func serveArgs(t *testing.T, where string, args []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan int, 1)
	var errb bytes.Buffer
	go func() {
		done <- run(ctx, append(args, "--output", "json"), strings.NewReader(""), pw, &errb)
		pw.Close()
	}()
	var started struct{ Addr, Error string }
	if err := json.NewDecoder(pr).Decode(&started); err != nil || started.Addr == "" {
		cancel()
		t.Fatalf("%s: ociwf-registry %s did not start: %v %s (exit %d) %s", where, strings.Join(args, " "), err, started.Error, <-done, errb.String())
	}
	go io.Copy(io.Discard, pr) //nolint:errcheck // drain
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != cli.ExitOK {
			t.Errorf("%s: ociwf-registry exited %d after SIGTERM's equivalent; want 0 (%s)", where, code, errb.String())
		}
	})
	return started.Addr
}

// get returns the status of GET http://addr/path.
func get(t *testing.T, addr, path string) int {
	t.Helper()
	c := http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// replaceFlag returns args with the value of flag replaced by value.
func replaceFlag(t *testing.T, args []string, flag, value string) []string {
	t.Helper()
	out := append([]string(nil), args...)
	for i := range out {
		if out[i] == flag && i+1 < len(out) {
			out[i+1] = value
			return out
		}
	}
	t.Fatalf("no %s in %q", flag, args)
	return nil
}

// TestDeployKubernetes reads docs/deploy/kubernetes.yaml and starts the
// Deployment's container as the pod would: its args, the ConfigMap's files
// where they are mounted, the Secret's value in its environment variable,
// the volume mounts under a temporary directory; then asks its probes'
// endpoint.
func TestDeployKubernetes(t *testing.T) {
	raw, err := os.ReadFile(deployDir + "kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string]*k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var o k8sObject
		if err := dec.Decode(&o); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("kubernetes.yaml does not parse: %v", err)
		}
		if byKind[o.Kind] != nil {
			t.Fatalf("kubernetes.yaml has two %s objects", o.Kind)
		}
		byKind[o.Kind] = &o
	}
	for _, k := range []string{"ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment", "Service"} {
		if byKind[k] == nil {
			t.Fatalf("kubernetes.yaml has no %s (has %v)", k, keys(byKind))
		}
	}
	dep := byKind["Deployment"]
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the Deployment has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if sc := pod.SecurityContext; sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser == 0 {
		t.Errorf("the pod does not run as a non-root user: %+v", sc)
	}
	if sc := c.SecurityContext; sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || fmt.Sprint(sc.Capabilities.Drop) != "[ALL]" {
		t.Errorf("the container's securityContext is not read-only, unprivileged, without capabilities: %+v", sc)
	}
	if len(c.Args) == 0 || c.Args[0] != "serve" {
		t.Fatalf("the container's args %q do not start with serve (the image's entrypoint is ociwf-registry)", c.Args)
	}

	// The pod's filesystem: each mount a directory of its own.
	root := t.TempDir()
	mounts := map[string]string{}
	args := append([]string(nil), c.Args...)
	for _, m := range c.VolumeMounts {
		dir := filepath.Join(root, m.Name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts[m.MountPath] = dir
		for i := range args {
			if strings.HasPrefix(c.Args[i], m.MountPath+"/") {
				args[i] = dir + strings.TrimPrefix(c.Args[i], m.MountPath)
			}
		}
		for _, v := range pod.Volumes {
			if v.Name == m.Name && v.ConfigMap != nil {
				if v.ConfigMap.Name != byKind["ConfigMap"].Metadata.Name {
					t.Fatalf("volume %s names ConfigMap %s", v.Name, v.ConfigMap.Name)
				}
				for f, body := range byKind["ConfigMap"].Data {
					if err := os.WriteFile(filepath.Join(dir, f), []byte(body), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			if v.Name == m.Name && v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != byKind["PersistentVolumeClaim"].Metadata.Name {
				t.Fatalf("volume %s claims %s, not the PersistentVolumeClaim", v.Name, v.PersistentVolumeClaim.ClaimName)
			}
		}
	}
	for _, e := range c.Env {
		ref := e.ValueFrom.SecretKeyRef
		v, ok := byKind["Secret"].StringData[ref.Key]
		if ref.Name != byKind["Secret"].Metadata.Name || !ok {
			t.Fatalf("env %s names secret %s key %s, which kubernetes.yaml lacks", e.Name, ref.Name, ref.Key)
		}
		t.Setenv(e.Name, v)
	}
	// The storage root the configuration names, under its volume; the
	// listeners on loopback (Distribution's environment override for the
	// file's http.addr).
	var conf struct {
		Storage struct {
			Filesystem struct{ RootDirectory string }
		}
		HTTP struct{ Addr string }
	}
	if err := yaml.Unmarshal([]byte(byKind["ConfigMap"].Data["config.yml"]), &conf); err != nil {
		t.Fatalf("the ConfigMap's config.yml: %v", err)
	}
	storage := conf.Storage.Filesystem.RootDirectory
	for mp, dir := range mounts {
		if strings.HasPrefix(storage, mp+"/") {
			storage = dir + strings.TrimPrefix(storage, mp)
		}
	}
	if storage == conf.Storage.Filesystem.RootDirectory {
		t.Fatalf("the storage root %s is on no volume: a read-only root filesystem cannot hold it", storage)
	}
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", storage)
	t.Setenv("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
	args = replaceFlag(t, args, "--metrics-addr", "127.0.0.1:0")
	addr := serveArgs(t, "kubernetes.yaml", args)

	ports := map[string]int{}
	for _, p := range c.Ports {
		ports[p.Name] = p.ContainerPort
	}
	if want := fmt.Sprintf(":%d", ports["registry"]); conf.HTTP.Addr != want {
		t.Errorf("config.yml listens on %q, the container port is %s", conf.HTTP.Addr, want)
	}
	probes := c.probes(t)
	if len(probes) != 3 {
		t.Errorf("probes %v, want readiness, liveness and startup", probes)
	}
	for p, pp := range probes {
		if pp[1] != "registry" || pp[0] != registryext.HealthPath {
			t.Errorf("%s asks %s on port %s, want %s on the registry port", p, pp[0], pp[1], registryext.HealthPath)
		}
		if code := get(t, addr, pp[0]); code != http.StatusOK {
			t.Errorf("%s: GET %s: %d, want 200", p, pp[0], code)
		}
	}
	if code := get(t, addr, "/v2/"); code != http.StatusOK {
		t.Errorf("GET /v2/: %d, want 200", code)
	}
	for _, p := range byKind["Service"].Spec.Ports {
		if _, ok := ports[p.TargetPort]; !ok {
			t.Errorf("the Service targets port %q, which the container does not name", p.TargetPort)
		}
	}
	if _, err := os.Stat(filepath.Join(mounts["/var/lib/ociwf-registry"], "audit.jsonl")); err != nil {
		t.Errorf("the audit log is not on the data volume: %v", err)
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestDeploySystemd reads docs/deploy/ociwf-registry.service, checks it
// with systemd-analyze verify where systemd is installed, and starts its
// ExecStart as the service would (the Kubernetes ConfigMap's config.yml
// and rules.yaml as the configuration, the state directory under a
// temporary one).
func TestDeploySystemd(t *testing.T) {
	raw, err := os.ReadFile(deployDir + "ociwf-registry.service")
	if err != nil {
		t.Fatal(err)
	}
	unit := string(raw)
	settings := map[string][]string{}
	for _, line := range strings.Split(unit, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			settings[k] = append(settings[k], v)
		}
	}
	for k, want := range map[string]string{"DynamicUser": "yes", "ProtectSystem": "strict", "StateDirectory": "ociwf-registry", "NoNewPrivileges": "yes", "ProtectHome": "yes", "PrivateTmp": "yes", "CapabilityBoundingSet": ""} {
		if got := settings[k]; len(got) != 1 || got[0] != want {
			t.Errorf("ociwf-registry.service: %s=%q, want %q", k, got, want)
		}
	}
	exec0 := settings["ExecStart"]
	if len(exec0) != 1 {
		t.Fatalf("ociwf-registry.service: ExecStart %q", exec0)
	}
	args := strings.Fields(exec0[0])
	if filepath.Base(args[0]) != "ociwf-registry" || args[1] != "serve" {
		t.Fatalf("ExecStart %q does not run ociwf-registry serve", exec0[0])
	}

	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil && os.Getenv("OCIWF_REQUIRE_SERVICES") == "1" {
		t.Fatal("no systemd-analyze on PATH (scripts/services.sh installs systemd)")
	}
	if err == nil {
		// verify checks that ExecStart names an executable: this test's.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(t.TempDir(), "ociwf-registry.service")
		if err := os.WriteFile(path, []byte(strings.Replace(unit, "ExecStart="+args[0], "ExecStart="+self, 1)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(analyze, "verify", path).CombinedOutput()
		if err != nil || strings.Contains(string(out), "ociwf-registry.service") {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	} else {
		t.Log("systemd-analyze not installed: the unit's syntax is not checked")
	}

	// The configuration and state directories, under a temporary one.
	conf, err := os.ReadFile(deployDir + "kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cm k8sObject
	if err := yaml.Unmarshal(conf, &cm); err != nil || cm.Kind != "ConfigMap" {
		t.Fatalf("the first object of kubernetes.yaml is not the ConfigMap: %v", err)
	}
	root := t.TempDir()
	dirs := map[string]string{"/etc/ociwf-registry": filepath.Join(root, "etc"), "/var/lib/ociwf-registry": filepath.Join(root, "state")}
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for f, body := range cm.Data {
		if err := os.WriteFile(filepath.Join(dirs["/etc/ociwf-registry"], f), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args = args[1:]
	for i := range args {
		for from, to := range dirs {
			if strings.HasPrefix(args[i], from+"/") {
				args[i] = to + strings.TrimPrefix(args[i], from)
			}
		}
	}
	t.Setenv("REGISTRY_HTTP_SECRET", "test-secret")
	t.Setenv("REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY", filepath.Join(dirs["/var/lib/ociwf-registry"], "storage"))
	t.Setenv("REGISTRY_HTTP_ADDR", "127.0.0.1:0")
	addr := serveArgs(t, "ociwf-registry.service", replaceFlag(t, args, "--metrics-addr", "127.0.0.1:0"))
	if code := get(t, addr, registryext.HealthPath); code != http.StatusOK {
		t.Errorf("GET %s: %d, want 200", registryext.HealthPath, code)
	}
	if _, err := os.Stat(filepath.Join(dirs["/var/lib/ociwf-registry"], "audit.jsonl")); err != nil {
		t.Errorf("the audit log is not in the state directory: %v", err)
	}
}
