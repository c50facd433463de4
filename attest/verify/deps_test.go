package verify_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// A program that verifies workflows through verify.Fetch (the embedder
// under internal/embedder) links neither Kubernetes client-go nor cosign's
// command-line packages with their viper configuration, nor any KMS
// provider: those come in only when a program imports them (ociwf does).
//
// github.com/spf13/cobra itself (with pflag, and nothing else of cobra's
// or viper's) is still linked: cosign's verifier imports rekor's PKCS#7
// support, whose relic x509tools package declares cobra flags.
func TestEmbedderDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go is not on PATH")
	}
	out, err := exec.Command(goTool, "list", "-deps", "./internal/embedder").Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("go list -deps ./internal/embedder: %v\n%s", err, stderr)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, "ociwf.dev/attest/verify") {
		t.Fatalf("go list -deps ./internal/embedder does not list ociwf.dev/attest/verify:\n%s", out)
	}
	forbidden := []string{
		"k8s.io/client-go/",
		"github.com/spf13/viper",
		"github.com/sigstore/cosign/v2/cmd/",
		"github.com/sigstore/cosign/v2/pkg/cosign/kubernetes",
		"github.com/sigstore/sigstore/pkg/signature/kms/aws",
		"github.com/sigstore/sigstore/pkg/signature/kms/azure",
		"github.com/sigstore/sigstore/pkg/signature/kms/gcp",
		"github.com/sigstore/sigstore/pkg/signature/kms/hashivault",
	}
	var bad []string
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/spf13/") && d != "github.com/spf13/cobra" && d != "github.com/spf13/pflag" {
			bad = append(bad, d)
		}
		for _, f := range forbidden {
			if d == strings.TrimSuffix(f, "/") || strings.HasPrefix(d, f) {
				bad = append(bad, d)
			}
		}
	}
	if len(bad) > 0 {
		t.Errorf("the verifier links %d packages it must not (of %d):\n  %s", len(bad), len(deps), strings.Join(bad, "\n  "))
	}
}
