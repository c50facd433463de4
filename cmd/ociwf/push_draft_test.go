package main

import (
	"strings"
	"testing"

	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/policy/registrytest"
)

// A draft tag moves to new content with --draft; without it, and for a
// tag the immutability rules protect, push refuses (exit 4).
func TestPushDraftMovesOnlyMutableTags(t *testing.T) {
	repo := registrytest.New(t) + "/team/build"
	last := func(out string) string {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return lines[len(lines)-1]
	}
	out, stderr, code := runCLI(t, "push", "--plain-http", "--draft", samples+"build-test-release.yaml", repo+":draft")
	if code != cli.ExitOK {
		t.Fatal(stderr)
	}
	first := last(out)
	if _, stderr, code = runCLI(t, "push", "--plain-http", samples+"fan-out-fan-in.yaml", repo+":draft"); code != cli.ExitImmutable {
		t.Fatalf("push without --draft over a draft tag: exit %d: %s", code, stderr)
	}
	out, stderr, code = runCLI(t, "push", "--plain-http", "--draft", samples+"fan-out-fan-in.yaml", repo+":draft")
	second := last(out)
	if code != cli.ExitOK || second == first {
		t.Fatalf("draft push: exit %d: %s %s", code, out, stderr)
	}
	digest := second[strings.LastIndex(second, "@")+1:]
	if out, stderr, code = runCLI(t, "inspect", "--plain-http", "--output", "json", repo+":draft"); code != cli.ExitOK || !strings.Contains(out, digest) {
		t.Fatalf("the draft tag does not name %s: %s %s", digest, out, stderr)
	}
	if _, stderr, code = runCLI(t, "push", "--plain-http", "--draft", samples+"build-test-release.yaml", repo+":1.4.0"); code != cli.ExitImmutable || !strings.Contains(stderr, `under rule "semver"`) {
		t.Fatalf("draft push to a semver tag: exit %d: %s", code, stderr)
	}
}
