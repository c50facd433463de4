package verify_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"ociwf.dev/attest/accessory"
	"ociwf.dev/attest/internal/attesttest"
	signkeys "ociwf.dev/attest/keys"
	"ociwf.dev/attest/provenance"
	"ociwf.dev/attest/publish"
	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/registrytest"
	"ociwf.dev/policy/trust"
)

// The benchmarks and the seeder publish versions of this sample, which
// differ only in metadata.version.
const (
	benchSample = "build-test-release.yaml"
	// benchSeedWorkers publish versions at once while seeding.
	benchSeedWorkers = 8
)

var benchVersionLine = regexp.MustCompile(`(?m)^  version: .*$`)

// benchVersions is $OCIWF_BENCH_VERSIONS, default 1000: how many versions
// BenchmarkVerifyAll and TestSeed publish.
func benchVersions(tb testing.TB) int {
	s := os.Getenv("OCIWF_BENCH_VERSIONS")
	if s == "" {
		return 1000
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		tb.Fatalf("OCIWF_BENCH_VERSIONS=%q: want a positive number", s)
	}
	return n
}

// benchSeed publishes n versions (1.0.0, 1.0.1, ...) of the sample to repo
// (registry/repository) as ociwf publish does (push by digest, sign,
// attest SLSA provenance and the CycloneDX SBOM, tag), with the signer
// loaded once, benchSeedWorkers at a time. It returns the wall time.
func benchSeed(tb testing.TB, o *target.Opener, s *accessory.Signer, repo string, n int) time.Duration {
	tb.Helper()
	src, err := os.ReadFile(filepath.Join("..", "..", "testdata", "workflows", benchSample))
	if err != nil {
		tb.Fatal(err)
	}
	if !benchVersionLine.Match(src) {
		tb.Fatalf("%s: no metadata.version line to vary", benchSample)
	}
	reg := accessory.NewRegistry(o, accessory.RegistryOptions{Mode: accessory.TagScheme})
	start := time.Now()
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(benchSeedWorkers)
	for i := range n {
		g.Go(func() error {
			ver := fmt.Sprintf("1.0.%d", i)
			b, err := ociwf.Compile(ctx, benchVersionLine.ReplaceAll(src, []byte("  version: "+ver)), ociwf.CompileOptions{File: benchSample, ToolVersion: "bench"})
			if err != nil {
				return fmt.Errorf("compile %s: %w", ver, err)
			}
			dst, err := o.Open(ctx, repo+":"+ver)
			if err != nil {
				return err
			}
			_, err = publish.Publish(ctx, dst, b, reg, publish.Key(s), publish.Options{
				Tag:        ver,
				Provenance: provenance.Options{ToolVersion: "bench", WorkflowPath: benchSample},
			})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		tb.Fatalf("seed %s: %v", repo, err)
	}
	return time.Since(start)
}

// BenchmarkVerifyAll times Verifier.VerifyAll over $OCIWF_BENCH_VERSIONS
// (default 1000) published versions of one repository, at two
// concurrencies. The registry runs in the same process, so a CPU profile
// shows both sides. Seeding is not timed; it is logged.
//
//	OCIWF_BENCH_VERSIONS=1000 go test ./attest/verify -run '^$' -bench VerifyAll -benchtime 3x
func BenchmarkVerifyAll(b *testing.B) {
	n := benchVersions(b)
	dir := b.TempDir()
	host := registrytest.NewAt(b, filepath.Join(dir, "registry"))
	key, pub := attesttest.KeyPair(b, dir, "bench")
	repo := host + "/wf/many"
	took := benchSeed(b, attesttest.Opener(b), attesttest.Signer(b, key), repo, n)
	b.Logf("seeded %d versions in %s (%.0f versions/s, %d publishing at once)", n, took.Round(time.Millisecond), float64(n)/took.Seconds(), benchSeedWorkers)
	pol := trust.KeyPolicy(pub, repo, trust.KeyPolicyOptions{})
	for _, c := range []int{8, 16} {
		b.Run(fmt.Sprintf("concurrency=%d", c), func(b *testing.B) {
			v, err := verify.New(pol, attesttest.Opener(b), verify.Options{})
			if err != nil {
				b.Fatal(err)
			}
			var requests int64
			for b.Loop() {
				sum, err := v.VerifyAll(context.Background(), repo, verify.AllOptions{Concurrency: c})
				if err != nil {
					b.Fatal(err)
				}
				if sum.Versions != n || sum.Verified != n {
					b.Fatalf("%d versions, %d verified; want %d", sum.Versions, sum.Verified, n)
				}
				requests += sum.Requests
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "versions/s")
			b.ReportMetric(float64(requests)/float64(n*b.N), "requests/version")
		})
	}
}

// BenchmarkVerify times one full verification (all eight checks) of a
// published version by tag, with one Verifier (keys loaded, connections
// kept alive), and reports its HTTP requests.
func BenchmarkVerify(b *testing.B) {
	dir := b.TempDir()
	host := registrytest.NewAt(b, filepath.Join(dir, "registry"))
	key, pub := attesttest.KeyPair(b, dir, "bench")
	o := attesttest.Opener(b)
	sb := attesttest.Sample(b, benchSample)
	ref := host + "/wf/release:" + sb.Plan.Workflow.Version
	dst, err := o.Open(context.Background(), ref)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := publish.Publish(context.Background(), dst, sb, accessory.NewRegistry(o, accessory.RegistryOptions{Mode: accessory.TagScheme}), publish.Key(attesttest.Signer(b, key)), publish.Options{
		Tag: dst.Reference,
	}); err != nil {
		b.Fatal(err)
	}
	v, err := verify.New(trust.KeyPolicy(pub, dst.Name, trust.KeyPolicyOptions{}), attesttest.Opener(b), verify.Options{})
	if err != nil {
		b.Fatal(err)
	}
	var requests int64
	for b.Loop() {
		_, rep, err := v.Verify(context.Background(), ref)
		if err != nil {
			b.Fatal(err)
		}
		requests += rep.Requests
	}
	b.ReportMetric(float64(requests)/float64(b.N), "requests/op")
}

// TestSeed publishes $OCIWF_BENCH_VERSIONS (default 1000) versions of the
// sample to $OCIWF_SEED_REGISTRY (host:port, plain HTTP), repository
// $OCIWF_SEED_REPOSITORY (default wf/many), signed and attested with the
// cosign key file $OCIWF_SEED_KEY (password $COSIGN_PASSWORD), as ociwf
// publish would, but with the key decrypted once. scripts/bench-verify.sh
// uses it to time ociwf verify --all; without OCIWF_SEED_REGISTRY it skips.
func TestSeed(t *testing.T) {
	host := os.Getenv("OCIWF_SEED_REGISTRY")
	if host == "" {
		t.Skip("seeder for scripts/bench-verify.sh: set OCIWF_SEED_REGISTRY=host:port and OCIWF_SEED_KEY=cosign.key")
	}
	key := os.Getenv("OCIWF_SEED_KEY")
	if key == "" {
		t.Fatal("OCIWF_SEED_KEY: name the cosign private key file (password in COSIGN_PASSWORD)")
	}
	repo := os.Getenv("OCIWF_SEED_REPOSITORY")
	if repo == "" {
		repo = "wf/many"
	}
	n := benchVersions(t)
	s, err := signkeys.LoadSigner(context.Background(), accessory.SignerOptions{Key: key, Pass: func(bool) ([]byte, error) {
		return []byte(os.Getenv("COSIGN_PASSWORD")), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	took := benchSeed(t, attesttest.Opener(t), s, host+"/"+repo, n)
	t.Logf("seeded %d versions of %s/%s in %s (%.0f versions/s, %d publishing at once)", n, host, repo, took.Round(time.Millisecond), float64(n)/took.Seconds(), benchSeedWorkers)
}
