package main

import (
	"os/exec"
	"strings"
	"testing"
)

// The ociwf binary starts fast because it links none of what only the
// registry, a KMS key or a Kubernetes secret needs: Distribution and its
// storage drivers (ociwf-registry has them), the KMS providers, client-go
// and the GitLab client (the sigstore-kms-* plugins have them), cosign's
// command-line packages with viper, and no Prometheus server side.
func TestClientDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	forbidden := []string{
		"github.com/distribution/distribution/",
		"ociwf.dev/policy/registryext",
		"github.com/aws/",
		"cloud.google.com/go/storage",
		"github.com/Azure/",
		"github.com/redis/",
		"k8s.io/",
		"gitlab.com/gitlab-org/",
		"github.com/spf13/viper",
		"github.com/sigstore/cosign/v2/cmd/",
		"github.com/sigstore/cosign/v2/pkg/signature",
		"github.com/sigstore/sigstore/pkg/signature/kms/aws",
		"github.com/sigstore/sigstore/pkg/signature/kms/azure",
		"github.com/sigstore/sigstore/pkg/signature/kms/gcp",
		"github.com/sigstore/sigstore/pkg/signature/kms/hashivault",
	}
	var bad []string
	for _, d := range deps {
		for _, f := range forbidden {
			if d == strings.TrimSuffix(f, "/") || strings.HasPrefix(d, f) {
				bad = append(bad, d)
				break
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("ociwf links %d packages it must not (of %d):\n  %s", len(bad), len(deps), strings.Join(bad, "\n  "))
	}
	t.Logf("ociwf links %d packages", len(deps))
}
