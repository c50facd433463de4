// Command embedder is the smallest program that verifies a workflow before
// running it: it loads a trust policy, fetches the plan with verify.Fetch
// and prints it. It stands for a runtime that embeds the verifier, and its
// dependency list is what such a runtime links (see TestEmbedderDeps).
//
//	go run ./attest/verify/internal/embedder -policy trust-policy.yaml REGISTRY/REPO:TAG
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"

	"ociwf.dev/attest/verify"
	"ociwf.dev/ociwf/target"
	"ociwf.dev/policy/trust"
)

func main() {
	policyFile := flag.String("policy", "trust-policy.yaml", "trust policy file")
	plainHTTP := flag.Bool("plain-http", false, "reach the registry over plain HTTP")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: embedder [-policy FILE] [-plain-http] REGISTRY/REPO:TAG")
		os.Exit(2)
	}
	if err := run(context.Background(), *policyFile, *plainHTTP, flag.Arg(0)); err != nil {
		fmt.Fprintln(os.Stderr, "embedder:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, policyFile string, plainHTTP bool, ref string) error {
	policy, err := trust.Load(policyFile)
	if err != nil {
		return fmt.Errorf("load trust policy: %w", err)
	}
	o, err := target.New(target.Options{PlainHTTP: plainHTTP})
	if err != nil {
		return fmt.Errorf("registry client: %w", err)
	}
	p, report, err := verify.Fetch(ctx, ref, policy, o, verify.Options{})
	if err != nil {
		return fmt.Errorf("verify %s: %w", ref, err)
	}
	fmt.Fprintf(os.Stderr, "verified under trust policy %q, signed by %v\n", report.Scope, report.Signers)
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(p); err != nil {
		return fmt.Errorf("write plan: %w", err)
	}
	return nil
}
