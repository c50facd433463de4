package registryext_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/redis/go-redis/v9"
)

// buildRegistry builds the ociwf-registry command for tests that need
// real replica processes (to kill one).
func buildRegistry(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "ociwf-registry")
	out, err := exec.Command("go", "build", "-o", bin, "ociwf.dev/cmd/ociwf-registry").CombinedOutput()
	if err != nil {
		t.Fatalf("go build ociwf-registry: %v\n%s", err, out)
	}
	return bin
}

// replica is an ociwf-registry serve process.
type replica struct {
	cmd    *exec.Cmd
	host   string
	stderr *syncBuffer
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var servingLine = regexp.MustCompile(`^Serving on http://(\S+) `)

// startReplicaProcess runs bin serve with config on a free
// loopback port and its own audit log; it is killed when the test ends.
func startReplicaProcess(t *testing.T, bin, config string) *replica {
	t.Helper()
	r := &replica{stderr: &syncBuffer{}}
	r.cmd = exec.Command(bin, "serve", "--config", config, "--addr", "127.0.0.1:0", "--audit-log", filepath.Join(t.TempDir(), "audit.jsonl"))
	r.cmd.Stderr = r.stderr
	out, err := r.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		_ = r.cmd.Wait()
		if t.Failed() {
			t.Logf("replica %s stderr:\n%s", r.host, r.stderr.String())
		}
	})
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if m := servingLine.FindStringSubmatch(sc.Text()); m != nil {
			r.host = m[1]
			go func() {
				for sc.Scan() {
				}
			}()
			return r
		}
	}
	t.Fatalf("replica did not start: %s", r.stderr.String())
	return nil
}

// dsseEnvelope is a DSSE envelope of an in-toto statement of predicate type pt,
// stored as a cosign attestation layer without a predicateType
// annotation, so the registry reads it to learn its type.
func dsseEnvelope(pt, n string) []byte {
	st := fmt.Sprintf(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"x","digest":{"sha256":"%s"}}],"predicateType":%q,"predicate":{"n":%q}}`, digest.FromString(n).Encoded(), pt, n)
	return fmt.Appendf(nil, `{"payloadType":"application/vnd.in-toto+json","payload":%q,"signatures":[]}`, base64.StdEncoding.EncodeToString([]byte(st)))
}

// stallBlob replaces the stored data of blob d under root with a FIFO, so
// the next replica reading it blocks inside the read, and returns the
// path and a function that restores the real content.
func stallBlob(t *testing.T, root string, d ocispec.Descriptor, content []byte) (string, func()) {
	t.Helper()
	p := filepath.Join(root, "docker/registry/v2/blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()[:2], d.Digest.Encoded(), "data")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
	return p, func() {
		t.Helper()
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p+".restore", content, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(p+".restore", p); err != nil {
			t.Fatal(err)
		}
	}
}

// waitFor waits until cond holds, checking every few milliseconds, for at
// most 30 seconds: the state of another process (a lock it took) has no
// event to wait on.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("waited 30s for %s", what)
		}
	}
}

// holdsFlock reports whether process pid holds an exclusive flock(2)
// lock (/proc/locks).
func holdsFlock(t *testing.T, pid int) bool {
	b, err := os.ReadFile("/proc/locks")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 4 && f[1] == "FLOCK" && f[3] == "WRITE" && f[4] == strconv.Itoa(pid) {
			return true
		}
	}
	return false
}

// A replica killed with SIGKILL while it holds a tag's lock (its PUT is
// stalled opening a blob under the lock) leaves the tag absent, not
// half-written; another replica can write the tag at once (filesystem:
// the kernel dropped the flock) or once the lease lapses (redis: the key
// was still held when the replica died).
func TestReplicasKilledMidPut(t *testing.T) {
	bin := buildRegistry(t)
	for _, mode := range []string{"filesystem", "redis"} {
		t.Run(mode, func(t *testing.T) {
			root := t.TempDir()
			coordination := "{mode: filesystem}"
			var rc *redis.Client
			if mode == "redis" {
				addr, _ := startRedis(t)
				coordination = fmt.Sprintf("{mode: redis, redis: {addr: %q, lease: 2s}}", addr)
				rc = redis.NewClient(&redis.Options{Addr: addr})
				t.Cleanup(func() { rc.Close() })
			}
			config := filepath.Join(t.TempDir(), "registry.yaml")
			if err := os.WriteFile(config, []byte(replicaConfig(root, coordination)), 0o644); err != nil {
				t.Fatal(err)
			}
			a, b := startReplicaProcess(t, bin, config), startReplicaProcess(t, bin, config)
			ca, cb := newRClient(t, a.host, "kill/app"), newRClient(t, b.host, "kill/app")
			cfgBlob := ca.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
			env := dsseEnvelope("https://example.com/test/v1", "killed")
			layer := ca.blob("application/vnd.dsse.envelope.v1+json", env)
			subject := digest.FromString("a version")
			tag := subject.Algorithm().String() + "-" + subject.Encoded() + ".att"
			man := manifestJSON(cfgBlob, []ocispec.Descriptor{layer}, nil, nil)

			_, restore := stallBlob(t, root, layer, env)
			result := make(chan int, 1)
			go func() {
				st, _ := ca.put(context.Background(), tag, man)
				result <- st
			}()
			// A takes the tag's lock and then stalls opening the blob,
			// a FIFO no one writes to, until it is killed.
			lockKey := "ociwf:lock:kill/app:" + tag
			if rc != nil {
				waitFor(t, "replica A's Redis lease on the tag", func() bool {
					n, err := rc.Exists(context.Background(), lockKey).Result()
					return err == nil && n == 1
				})
			} else {
				waitFor(t, "replica A's flock on the tag", func() bool { return holdsFlock(t, a.cmd.Process.Pid) })
			}
			if err := a.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			_ = a.cmd.Wait()
			if st := <-result; st == http.StatusCreated {
				t.Fatalf("the killed replica's PUT reports 201")
			}
			restore()
			if st, body, _ := cb.get(tag); st != http.StatusNotFound {
				t.Fatalf("after the kill the tag is %d %s, want absent (404)", st, body)
			}
			if rc != nil {
				if ttl, err := rc.PTTL(context.Background(), lockKey).Result(); err != nil || ttl <= 0 {
					t.Fatalf("the killed replica's lease: ttl %v %v, want still running", ttl, err)
				}
			}
			if st, body := cb.put(context.Background(), tag, man); st != http.StatusCreated {
				t.Fatalf("writing the tag through replica B after the kill: %d %s", st, body)
			}
			if st, _, got := cb.get(tag); st != http.StatusOK || got != digest.FromBytes(man).String() {
				t.Fatalf("the tag after the rewrite: %d %s", st, got)
			}
		})
	}
}

// A replica paused (SIGSTOP) past its Redis lease while it holds a tag's
// lock does not overwrite what another replica wrote meanwhile: resumed,
// it finds the lease or the tag changed and refuses (403 or 503).
func TestReplicasPausedPastLease(t *testing.T) {
	bin := buildRegistry(t)
	addr, _ := startRedis(t)
	root := t.TempDir()
	config := filepath.Join(t.TempDir(), "registry.yaml")
	if err := os.WriteFile(config, []byte(replicaConfig(root, fmt.Sprintf("{mode: redis, redis: {addr: %q, lease: 1s}}", addr))), 0o644); err != nil {
		t.Fatal(err)
	}
	a, b := startReplicaProcess(t, bin, config), startReplicaProcess(t, bin, config)
	ca, cb := newRClient(t, a.host, "pause/app"), newRClient(t, b.host, "pause/app")
	cfgBlob := ca.blob(ocispec.MediaTypeImageConfig, []byte("{}"))
	envA, envB := dsseEnvelope("https://example.com/test/v1", "a"), dsseEnvelope("https://example.com/test/v1", "b")
	layerA := ca.blob("application/vnd.dsse.envelope.v1+json", envA)
	layerB := cb.blob("application/vnd.dsse.envelope.v1+json", envB)
	subject := digest.FromString("a version")
	tag := subject.Algorithm().String() + "-" + subject.Encoded() + ".att"
	manA := manifestJSON(cfgBlob, []ocispec.Descriptor{layerA}, nil, nil)
	manB := manifestJSON(cfgBlob, []ocispec.Descriptor{layerB}, nil, nil)

	fifo, _ := stallBlob(t, root, layerA, envA)
	result := make(chan int, 1)
	go func() {
		st, _ := ca.put(context.Background(), tag, manA)
		result <- st
	}()
	rc := redis.NewClient(&redis.Options{Addr: addr})
	defer rc.Close()
	waitFor(t, "replica A's Redis lease on the tag", func() bool {
		n, err := rc.Exists(context.Background(), "ociwf:lock:pause/app:"+tag).Result()
		return err == nil && n == 1
	})
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	// B waits for A's lease to lapse, then writes.
	if st, body := cb.put(context.Background(), tag, manB); st != http.StatusCreated {
		t.Fatalf("replica B while A is paused: %d %s", st, body)
	}
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	// Let A's open of the blob complete (it then fails to read it as a
	// statement, which the check tolerates) and go on.
	w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if st := <-result; st != http.StatusForbidden && st != http.StatusServiceUnavailable {
		t.Errorf("the resumed replica's PUT: %d, want 403 or 503", st)
	}
	if st, _, got := cb.get(tag); st != http.StatusOK || got != digest.FromBytes(manB).String() {
		t.Errorf("the tag is %d %s, want B's %s", st, got, digest.FromBytes(manB))
	}
}
