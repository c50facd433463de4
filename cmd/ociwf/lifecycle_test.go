package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"oras.land/oras-go/v2/registry/remote"

	"ociwf.dev/attest/verify"
	"ociwf.dev/cmd/internal/cli"
	"ociwf.dev/ociwf/errdef"
	"ociwf.dev/policy/lifecycle"
	"ociwf.dev/policy/registrytest"
)

// testRoot is a temporary directory for the whole test binary, removed
// when it ends.
var testRoot string

// TestMain points the lifecycle state directory at a temporary one, so
// that no test of the package reads or writes the user's state file.
func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main() // the test binary run as ociwf (see startServe)
	}
	dir, err := os.MkdirTemp("", "ociwf-state-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Setenv("XDG_STATE_HOME", dir)
	testRoot = dir
	// `ociwf registry` hands over to the ociwf-registry binary: build it
	// and put it first on PATH, where the hand-over finds it (the test
	// binary has no ociwf-registry beside it).
	bin := filepath.Join(dir, "bin")
	build := exec.Command("go", "build", "-o", filepath.Join(bin, registryBinary), "ociwf.dev/cmd/"+registryBinary)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build ociwf-registry:", err)
		os.Exit(1)
	}
	os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// team is a trust policy with lifecycle roles and its members' keys:
// alice authors, alice, bob and carol review (2 approvals), ci signs and
// publishes, ops deprecates, retires and archives, and ops, bob and carol
// are the emergency set (2 of 3).
type team struct {
	dir, policy, host, repo string
}

func newTeam(t *testing.T) *team {
	t.Helper()
	dir := t.TempDir()
	t.Setenv("XDG_STATE_HOME", filepath.Join(dir, "state"))
	t.Setenv("COSIGN_PASSWORD", "pw")
	for _, who := range []string{"alice", "bob", "carol", "ci", "ops"} {
		if _, stderr, code := runCLI(t, "key", "generate", "--output-key-prefix", filepath.Join(dir, who)); code != 0 {
			t.Fatal(stderr)
		}
	}
	host := registrytest.New(t)
	tm := &team{dir: dir, policy: filepath.Join(dir, "policy.yaml"), host: host, repo: host + "/team/build"}
	if err := os.WriteFile(tm.policy, []byte(`version: ociwf.dev/trust/v1
trustPolicies:
  - name: team
    registryScopes: ["`+host+`/team/**"]
    signers:
      - {name: ci, key: ci.pub}
    lifecycle:
      signers:
        - {name: alice, key: alice.pub}
        - {name: bob, key: bob.pub}
        - {name: carol, key: carol.pub}
        - {name: ops, key: ops.pub}
      submit: [alice]
      approve: {signers: [alice, bob, carol], threshold: 2}
      publish: [ci]
      deprecate: [ops]
      retire: [ops]
      archive: [ops]
      emergency: {signers: [ops, bob, carol], threshold: 2}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	return tm
}

func (tm *team) key(who string) string { return filepath.Join(tm.dir, who+".key") }

// as runs a command signed by who under the team policy.
func (tm *team) as(t *testing.T, who string, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, append(args, "--plain-http", "--key", tm.key(who), "--policy", tm.policy)...)
}

// read runs a reading command under the team policy.
func (tm *team) read(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	return runCLI(t, append(args, "--plain-http", "--policy", tm.policy)...)
}

// push pushes a workflow file and returns its pinned reference.
func (tm *team) push(t *testing.T, file, tag string) string {
	t.Helper()
	out, stderr, code := runCLI(t, "push", "--plain-http", "--offline", file, tm.repo+":"+tag)
	if code != 0 {
		t.Fatalf("push: %s", stderr)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// publish publishes the pushed version pinned under its tag with ci's
// key and the team policy: ociwf publish REPOSITORY@DIGEST --tag TAG.
func (tm *team) publish(t *testing.T, pinned, tag string) (string, int) {
	t.Helper()
	_, stderr, code := tm.as(t, "ci", "publish", pinned, "--tag", tag)
	return stderr, code
}

// firstLine returns the first line of s.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// wantState checks that ociwf status says state first.
func (tm *team) wantState(t *testing.T, ref string, state lifecycle.State) string {
	t.Helper()
	out, stderr, code := tm.read(t, "status", ref)
	if code != 0 || firstLine(out) != "state: "+string(state) {
		t.Fatalf("status %s: exit %d, want state %s\n%s%s", ref, code, state, out, stderr)
	}
	return out
}

func TestLifecycleEndToEnd(t *testing.T) {
	tm := newTeam(t)
	ref := tm.push(t, samples+"build-test-release.yaml", "1.4.0")
	tag := tm.repo + ":1.4.0"
	tm.wantState(t, ref, lifecycle.Draft)

	// Submission, by the author.
	if out, stderr, code := tm.as(t, "bob", "review", "submit", ref); code != cli.ExitImmutable || !strings.Contains(stderr, "alice is allowed to submit") {
		t.Fatalf("submit by bob: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code := tm.as(t, "alice", "review", "submit", ref, "--actor", "Alice")
	if code != 0 || !strings.Contains(out, "Recorded review submission of "+ref) || !strings.Contains(out, "state: review (was draft)") {
		t.Fatalf("submit: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = tm.as(t, "alice", "review", "submit", ref, "--output", "json")
	var again struct {
		Existing bool
		State    string
		ID       string
	}
	if code != 0 || json.Unmarshal([]byte(out), &again) != nil || !again.Existing || again.State != "review" || !lifecycle.ValidID(again.ID) {
		t.Fatalf("submit again: exit %d\n%s", code, out)
	}

	// Approvals: not by the author, not by a non-approver; the first
	// leaves the version in review.
	if _, stderr, code := tm.as(t, "alice", "approve", ref); code != cli.ExitImmutable || !strings.Contains(stderr, "alice submitted the version and may not approve it") || !strings.Contains(stderr, "allowed from review: published") {
		t.Fatalf("self-approval: exit %d %s", code, stderr)
	}
	if _, stderr, code := tm.as(t, "ops", "approve", ref); code != cli.ExitImmutable || !strings.Contains(stderr, "alice, bob, carol is allowed to approve, this key is ops") {
		t.Fatalf("approval by ops: exit %d %s", code, stderr)
	}
	checklist := filepath.Join(tm.dir, "checklist.yaml")
	os.WriteFile(checklist, []byte("- {item: no secrets in parameters, outcome: pass}\n- {item: rollback documented, outcome: n/a, note: stateless}\n"), 0o600)
	out, stderr, code = tm.as(t, "bob", "approve", ref, "--comment", "looks right", "--checklist", checklist, "--risk", "low", "--risk-notes", "no network")
	if code != 0 || !strings.Contains(out, "state: review\n") || !strings.Contains(out, "1 of 2 approvals by bob") {
		t.Fatalf("approve by bob: exit %d\n%s%s", code, out, stderr)
	}
	if out, _, code := tm.as(t, "bob", "approve", ref); code != 0 || !strings.Contains(out, "Already recorded: approval") {
		t.Fatalf("approve again: exit %d\n%s", code, out)
	}
	status := tm.wantState(t, ref, lifecycle.Review)
	for _, want := range []string{"1  review", "by alice", `(actor "Alice")`, "1 of 2 approvals by bob", `approve by bob`, `comment "looks right"`, "risk low (no network)", "checklist 1 pass, 1 n/a"} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	// Publication needs the second approval.
	if stderr, code := tm.publish(t, ref, "1.4.0"); code != cli.ExitImmutable || !strings.Contains(stderr, "publication needs 2 approvals") {
		t.Fatalf("publish with 1 of 2 approvals: exit %d %s", code, stderr)
	}
	if out, stderr, code := tm.as(t, "carol", "approve", ref, "--risk", "medium"); code != 0 || !strings.Contains(out, "state: approved (was review)") {
		t.Fatalf("approve by carol: exit %d\n%s%s", code, out, stderr)
	}
	if stderr, code := tm.publish(t, ref, "1.4.0"); code != 0 {
		t.Fatalf("publish: exit %d %s", code, stderr)
	}
	tm.wantState(t, tag, lifecycle.Published)
	if out, stderr, code := tm.read(t, "verify", tag); code != 0 {
		t.Fatalf("verify published: exit %d\n%s%s", code, out, stderr)
	}
	// With the publisher's key alone, as a consumer without the team's
	// policy verifies: the review by signers outside --key is not
	// evaluated, and says so, but the publication counts.
	pub := filepath.Join(tm.dir, "ci.pub")
	if out, stderr, code := runCLI(t, "verify", "--plain-http", "--key", pub, tag); code != 0 || !strings.Contains(out, "state published") || !strings.Contains(out, "(review, sequence 1), signed by no signer of this trust policy") {
		t.Fatalf("verify published with --key alone: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := runCLI(t, "status", "--plain-http", "--key", pub, tag); code != 0 || !strings.Contains(out, "state: published") || !strings.Contains(out, "follows event") {
		t.Fatalf("status with --key alone: exit %d\n%s%s", code, out, stderr)
	}

	// Deprecation: verify warns and passes.
	next := tm.push(t, samples+"fan-out-fan-in.yaml", "2.0.1")
	if _, stderr, code := tm.as(t, "ops", "lifecycle", "deprecate", tag); code != cli.ExitUsage || !strings.Contains(stderr, "--reason") {
		t.Fatalf("deprecate without a reason: exit %d %s", code, stderr)
	}
	if _, stderr, code := tm.as(t, "ops", "lifecycle", "deprecate", tag, "--reason", "r", "--replacement", tm.repo+":2.0.1"); code != cli.ExitUsage || !strings.Contains(stderr, "pinned by digest") {
		t.Fatalf("deprecate with a tag replacement: exit %d %s", code, stderr)
	}
	out, stderr, code = tm.as(t, "ops", "lifecycle", "deprecate", tag, "--reason", "use 2.0.1", "--replacement", next)
	if code != 0 || !strings.Contains(out, "state: deprecated (was published)") {
		t.Fatalf("deprecate: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = tm.as(t, "ops", "lifecycle", "deprecate", tag, "--reason", "use 2.0.1", "--output", "json")
	if code != 0 || !strings.Contains(out, `"existing": true`) {
		t.Fatalf("deprecate again: exit %d\n%s", code, out)
	}
	if out, stderr, code := tm.read(t, "verify", tag); code != 0 || !strings.Contains(stderr, "WARNING: ") || !strings.Contains(stderr, "deprecated") || !strings.Contains(stderr, "use "+next+" instead") {
		t.Fatalf("verify deprecated: exit %d\n%s%s", code, out, stderr)
	}

	// Retirement: verify and pull refuse with exit 4 naming state and
	// reason; pull writes nothing; status still answers.
	if out, stderr, code := tm.as(t, "ops", "lifecycle", "retire", tag, "--reason", "CVE-2026-1234 in the test image"); code != 0 || !strings.Contains(out, "state: retired (was deprecated)") {
		t.Fatalf("retire: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := tm.read(t, "verify", tag); code != cli.ExitImmutable || !strings.Contains(stderr, "is retired (cannot_be_used): CVE-2026-1234 in the test image") {
		t.Fatalf("verify retired: exit %d %s", code, stderr)
	}
	out, _, code = tm.read(t, "verify", tag, "--output", "json")
	if docs := jsonDocuments(t, out); code != cli.ExitImmutable || len(docs) != 1 || docs[0]["exitCode"] != float64(cli.ExitImmutable) {
		t.Fatalf("verify --output json retired: exit %d\n%s", code, out)
	}
	dir := t.TempDir()
	if _, stderr, code := tm.read(t, "pull", tag, "-o", dir); code != cli.ExitImmutable || !strings.Contains(stderr, "retired") {
		t.Fatalf("pull retired: exit %d %s", code, stderr)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("pull of a retired version wrote %v", entries)
	}
	status = tm.wantState(t, tag, lifecycle.Retired)
	for _, want := range []string{"2  published", "by ci", "3  deprecated", `reason "use 2.0.1"`, "replacement " + next, "4  retired", `reason "CVE-2026-1234 in the test image"`} {
		if !strings.Contains(status, want) {
			t.Fatalf("status lacks %q:\n%s", want, status)
		}
	}
	if _, stderr, code := tm.as(t, "ops", "lifecycle", "deprecate", tag, "--reason", "again"); code != cli.ExitImmutable || !strings.Contains(stderr, "retired -> deprecated refused: the lifecycle state machine does not allow it; allowed from retired: archived") {
		t.Fatalf("deprecate retired: exit %d %s", code, stderr)
	}

	// Archival, final.
	if out, stderr, code := tm.as(t, "ops", "lifecycle", "archive", tag, "--reason", "retention: 7 years"); code != 0 || !strings.Contains(out, "state: archived") {
		t.Fatalf("archive: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := tm.as(t, "ops", "lifecycle", "archive", tag, "--reason", "retention: 7 years"); code != 0 || !strings.Contains(out, "Already recorded: archival") || strings.Contains(stderr, "NOTE:") {
		t.Fatalf("archive again: exit %d\n%s%s", code, out, stderr)
	}
	// Another reason does not rewrite the event, and says so.
	if out, stderr, code := tm.as(t, "ops", "lifecycle", "archive", tag, "--reason", "retention: 10 years"); code != 0 || !strings.Contains(out, "Already recorded: archival") ||
		!strings.Contains(stderr, `NOTE: the version is archived already, recorded with reason "retention: 7 years"`) {
		t.Fatalf("archive again with another reason: exit %d\n%s%s", code, out, stderr)
	}
	out, _, code = tm.as(t, "ops", "lifecycle", "deprecate", tag, "--reason", "again", "--output", "json")
	var refused struct {
		Error    string
		ExitCode int
	}
	if json.Unmarshal([]byte(out), &refused) != nil || code != cli.ExitImmutable || refused.ExitCode != cli.ExitImmutable ||
		!strings.Contains(refused.Error, "archived -> deprecated refused: the lifecycle state machine does not allow it; allowed from archived: none: the version is final") {
		t.Fatalf("deprecate archived: exit %d\n%s", code, out)
	}
	tm.wantState(t, tag, lifecycle.Archived)
	if _, stderr, code := tm.read(t, "verify", tag); code != cli.ExitImmutable || !strings.Contains(stderr, "archived") {
		t.Fatalf("verify archived: exit %d %s", code, stderr)
	}

	// Emergency retirement of the next version, by 2 of the 3.
	if _, stderr, code := tm.as(t, "alice", "review", "submit", next); code != 0 {
		t.Fatal(stderr)
	}
	// A rejection sends it back to draft; rejecting again changes
	// nothing; a new submission opens a new round.
	out, stderr, code = tm.as(t, "carol", "reject", next, "--comment", "missing tests")
	if code != 0 || !strings.Contains(out, "Recorded rejection of "+next) || !strings.Contains(out, "state: draft (was review)") || !strings.Contains(out, "rejected by carol") {
		t.Fatalf("reject: exit %d\n%s%s", code, out, stderr)
	}
	out, stderr, code = tm.as(t, "carol", "reject", next, "--comment", "missing tests", "--output", "json")
	if code != 0 || !strings.Contains(out, `"existing": true`) {
		t.Fatalf("reject again: exit %d\n%s%s", code, out, stderr)
	}
	status = tm.wantState(t, next, lifecycle.Draft)
	if !strings.Contains(status, "rejected: the review was rejected") || !strings.Contains(status, `reject by carol`) {
		t.Fatalf("status of a rejected version:\n%s", status)
	}
	if _, stderr, code := tm.as(t, "bob", "approve", next); code != cli.ExitImmutable || !strings.Contains(stderr, "the review was rejected") {
		t.Fatalf("approve a rejected version: exit %d %s", code, stderr)
	}
	if out, stderr, code := tm.as(t, "alice", "review", "submit", next); code != 0 || !strings.Contains(out, "state: review (was draft)") {
		t.Fatalf("submit again after the rejection: exit %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := tm.as(t, "bob", "approve", next, "--request", "sha256:"+strings.Repeat("e", 64)); code != cli.ExitImmutable || !strings.Contains(stderr, "is not the open one") {
		t.Fatalf("approve another request: exit %d %s", code, stderr)
	}
	for _, who := range []string{"bob", "carol"} {
		if _, stderr, code := tm.as(t, who, "approve", next); code != 0 {
			t.Fatal(stderr)
		}
	}
	nextTag := tm.repo + ":2.0.1"
	if stderr, code := tm.publish(t, next, "2.0.1"); code != 0 {
		t.Fatalf("publish: exit %d %s", code, stderr)
	}
	emergency := []string{"lifecycle", "retire", nextTag, "--emergency", "--reason", "credential leak", "--justification", "tokens printed to logs", "--impact", "every run since 2.0.1"}
	if _, stderr, code := tm.as(t, "ops", emergency...); code != cli.ExitUsage || !strings.Contains(stderr, "--justification, --impact and --remediation") {
		t.Fatalf("emergency retire without remediation: exit %d %s", code, stderr)
	}
	emergency = append(emergency, "--remediation", "rotate tokens")
	if _, stderr, code := tm.as(t, "alice", emergency...); code != cli.ExitImmutable || !strings.Contains(stderr, "ops, bob, carol is allowed to emergency") {
		t.Fatalf("emergency retire by alice: exit %d %s", code, stderr)
	}
	out, stderr, code = tm.as(t, "ops", emergency...)
	if code != 0 || !strings.Contains(out, "state: published") || !strings.Contains(out, "is pending: 1 of 2 emergency approvers (ops)") {
		t.Fatalf("emergency retire: exit %d\n%s%s", code, out, stderr)
	}
	if out, _, code := tm.as(t, "ops", emergency...); code != 0 || !strings.Contains(out, "Already recorded: emergency retirement") {
		t.Fatalf("emergency retire again: exit %d\n%s", code, out)
	}
	status = tm.wantState(t, nextTag, lifecycle.Published)
	if !strings.Contains(status, "pending emergency retirement sha256:") || !strings.Contains(status, `reason "credential leak"`) {
		t.Fatalf("status of a pending emergency retirement:\n%s", status)
	}
	if _, stderr, code := tm.as(t, "alice", "approve", nextTag, "--emergency"); code != cli.ExitImmutable || !strings.Contains(stderr, "allowed to emergency") {
		t.Fatalf("emergency approval by alice: exit %d %s", code, stderr)
	}
	out, stderr, code = tm.as(t, "bob", "approve", nextTag, "--emergency")
	if code != 0 || !strings.Contains(out, "state: retired (was published)") {
		t.Fatalf("emergency approval: exit %d\n%s%s", code, out, stderr)
	}
	if out, stderr, code := tm.as(t, "bob", "approve", nextTag, "--emergency"); code != 0 || !strings.Contains(out, "Already recorded: emergency approval") {
		t.Fatalf("emergency approval again: exit %d\n%s%s", code, out, stderr)
	}
	status = tm.wantState(t, nextTag, lifecycle.Retired)
	if lines := strings.Split(status, "\n"); !strings.Contains(status, "\nemergency: ") || !strings.Contains(status, "approved by bob") || strings.Contains(lines[0], "emergency") {
		t.Fatalf("status of an emergency retirement:\n%s", status)
	}
	if _, stderr, code := tm.read(t, "verify", nextTag); code != cli.ExitImmutable || !strings.Contains(stderr, "retired (cannot_be_used) by emergency: credential leak") {
		t.Fatalf("verify emergency retired: exit %d %s", code, stderr)
	}
	out, _, code = tm.read(t, "status", nextTag, "--output", "json")
	var st struct {
		State     string
		Emergency bool
		Digest    string
		Chain     []struct{ Signers []string }
	}
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.State != "retired" || !st.Emergency || len(st.Chain) != 4 {
		t.Fatalf("status --output json: exit %d\n%s", code, out)
	}

	// ls lists the versions with their states, a draft among them.
	src, err := os.ReadFile(samples + "build-test-release.yaml")
	if err != nil {
		t.Fatal(err)
	}
	draft := filepath.Join(tm.dir, "draft.yaml")
	os.WriteFile(draft, []byte(strings.Replace(string(src), "version: 1.4.0", "version: 0.1.0", 1)), 0o600)
	tm.push(t, draft, "0.1.0")
	out, stderr, code = tm.read(t, "ls", tm.repo)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 3 {
		t.Fatalf("ls: exit %d\n%s%s", code, out, stderr)
	}
	for i, want := range [][]string{{"0.1.0", "draft", "created 1970-01-01T00:00:00Z"}, {"1.4.0", "archived", "ci"}, {"2.0.1", "retired (emergency)", "ci"}} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Fatalf("ls line %d %q lacks %q\n%s", i, lines[i], w, out)
			}
		}
	}
	out, _, code = tm.read(t, "ls", tm.repo, "--output", "json")
	var versions []struct{ Tag, Digest, State string }
	if code != 0 || json.Unmarshal([]byte(out), &versions) != nil || len(versions) != 3 || versions[1].State != "archived" || versions[2].Digest != st.Digest {
		t.Fatalf("ls --output json: exit %d\n%s", code, out)
	}
}

func TestApproveChecksItsFlags(t *testing.T) {
	t.Setenv("COSIGN_PASSWORD", "pw")
	dir := t.TempDir()
	ref := "127.0.0.1:1/team/build@sha256:" + strings.Repeat("a", 64) // never reached
	bad := filepath.Join(dir, "bad.yaml")
	cases := []struct {
		name, file string
		args       []string
		code       int
		want       string
	}{
		{"bad risk", "", []string{"--risk", "severe"}, cli.ExitUsage, "--risk \"severe\": want low, medium, high or critical"},
		{"notes without risk", "", []string{"--risk-notes", "x"}, cli.ExitUsage, "--risk-notes goes with --risk"},
		{"bad request", "", []string{"--request", "abc"}, cli.ExitUsage, "--request \"abc\""},
		{"bad outcome", "- {item: tests, outcome: maybe}\n", nil, cli.ExitError, "item 1 (\"tests\"): outcome \"maybe\", want pass, fail or n/a"},
		{"unknown field", "- {item: tests, outcome: pass, verdict: ok}\n", nil, cli.ExitError, "field verdict not found"},
		{"not a list", "item: tests\n", nil, cli.ExitError, "want a list of {item, outcome"},
		{"empty", "", nil, cli.ExitError, "lists no items"},
		{"no item", "- {outcome: pass}\n", nil, cli.ExitError, "item 1 has no item text"},
		{"missing file", "", []string{"--checklist", filepath.Join(dir, "nope.yaml")}, cli.ExitError, "nope.yaml"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"approve", ref, "--key", "none.key"}, c.args...)
			if c.args == nil {
				os.WriteFile(bad, []byte(c.file), 0o600)
				args = append(args, "--checklist", bad)
			}
			_, stderr, code := runCLI(t, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, c.code, c.want)
			}
		})
	}
	// A JSON checklist reads as well.
	good := filepath.Join(dir, "checklist.json")
	os.WriteFile(good, []byte(`[{"item": "tests", "outcome": "fail", "note": "flaky"}]`), 0o600)
	items, err := readChecklist(good)
	if err != nil || len(items) != 1 || items[0] != (lifecycle.ChecklistItem{Item: "tests", Outcome: "fail", Note: "flaky"}) {
		t.Fatalf("readChecklist = %+v, %v", items, err)
	}
}

// TestLifecycleUsageErrors checks the new commands' usage errors: each
// exits 2 with one JSON document under --output json.
func TestLifecycleUsageErrors(t *testing.T) {
	const host = "127.0.0.1:1" // never reached
	repo := host + "/team/build"
	pinned := repo + "@sha256:" + strings.Repeat("a", 64)
	cases := map[string][]string{
		"submit bad ref":           {"review", "submit", repo + ":bad tag", "--key", "k.key"},
		"submit repository":        {"review", "submit", repo, "--key", "k.key"},
		"submit no key":            {"review", "submit", pinned},
		"submit keyless no policy": {"review", "submit", pinned, "--keyless"},
		"approve bad ref":          {"approve", repo + "@sha256:abc", "--key", "k.key"},
		"reject unknown flag":      {"reject", pinned, "--key", "k.key", "--bogus"},
		"deprecate no reason":      {"lifecycle", "deprecate", pinned, "--key", "k.key"},
		"retire emergency partial": {"lifecycle", "retire", pinned, "--key", "k.key", "--reason", "r", "--emergency", "--impact", "i"},
		"retire details only":      {"lifecycle", "retire", pinned, "--key", "k.key", "--reason", "r", "--justification", "j"},
		"archive no emergency":     {"lifecycle", "archive", pinned, "--key", "k.key", "--reason", "r", "--emergency"},
		"lifecycle unknown":        {"lifecycle", "bogus"},
		"review unknown":           {"review", "bogus"},
		"state flags together":     {"status", pinned, "--key", "k.pub", "--state-file", "s.json", "--no-state"},
		"status repository":        {"status", repo, "--key", "k.pub"},
		"status no trust":          {"status", pinned},
		"status key and policy":    {"status", pinned, "--key", "k.pub", "--policy", "p.yaml"},
		"ls version":               {"ls", repo + ":1.0.0", "--key", "k.pub"},
		"ls concurrency":           {"ls", repo, "--key", "k.pub", "--concurrency", "0"},
		"signature format":         {"approve", pinned, "--key", "k.key", "--signature-format", "nope"},
	}
	for name, args := range cases {
		t.Run(name, func(t *testing.T) {
			if _, stderr, code := runCLI(t, args...); code != cli.ExitUsage {
				t.Fatalf("exit %d, want %d; stderr %q", code, cli.ExitUsage, stderr)
			}
			stdout, stderr, code := runCLI(t, append(args, "--output", "json")...)
			docs := jsonDocuments(t, stdout)
			if code != cli.ExitUsage || len(docs) != 1 || docs[0]["exitCode"] != float64(cli.ExitUsage) {
				t.Fatalf("exit %d, %d JSON documents %q (stderr %q)", code, len(docs), stdout, stderr)
			}
		})
	}
	// Every command documents itself with an example.
	for _, c := range [][]string{{"review", "submit"}, {"approve"}, {"reject"}, {"lifecycle", "deprecate"}, {"lifecycle", "retire"}, {"lifecycle", "archive"}, {"status"}, {"ls"}} {
		out, _, code := runCLI(t, append(c, "--help")...)
		_, examples, _ := strings.Cut(out, "Examples:\n")
		if code != 0 || !strings.Contains(examples, "ociwf "+strings.Join(c, " ")+" ") {
			t.Fatalf("%v --help: exit %d\n%s", c, code, out)
		}
	}
}

// TestLifecycleRollbackAndOneKey runs the lifecycle with one key (no
// policy file) on a registry that allows deletes: deleting the events is
// a rollback that the state file catches, and --no-state does not.
func TestLifecycleRollbackAndOneKey(t *testing.T) {
	keys := newKeys(t)
	t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
	host := registrytest.StartPlain(t, t.TempDir())
	repo := host + "/wf/one"
	if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", repo); code != 0 {
		t.Fatal(stderr)
	}
	tag := repo + ":1.4.0"
	if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", keys+".key", tag); code != 0 {
		t.Fatal(stderr)
	}
	// One key, no approvals: signed is published.
	out, _, code := runCLI(t, "status", "--plain-http", "--key", keys+".pub", tag)
	if code != 0 || firstLine(out) != "state: published" || !strings.Contains(out, "published by its signature alone") {
		t.Fatalf("status: exit %d\n%s", code, out)
	}
	stateFile := filepath.Join(t.TempDir(), "seen.json")
	out, stderr, code := runCLI(t, "lifecycle", "deprecate", "--plain-http", "--key", keys+".key", tag, "--reason", "old", "--state-file", stateFile)
	if code != 0 || !strings.Contains(out, "state: deprecated (was published)") {
		t.Fatalf("deprecate with one key: exit %d\n%s%s", code, out, stderr)
	}
	if _, err := os.Stat(stateFile); err != nil {
		t.Fatalf("--state-file: %v", err)
	}
	// The default state file sees the chain through verify.
	if _, stderr, code := runCLI(t, "verify", "--plain-http", "--key", keys+".pub", "--signature-only", tag); code != 0 || !strings.Contains(stderr, "deprecated") {
		t.Fatalf("verify deprecated: exit %d %s", code, stderr)
	}
	def, err := lifecycle.DefaultStatePath()
	if err != nil || !strings.HasPrefix(def, os.Getenv("XDG_STATE_HOME")) {
		t.Fatalf("default state path %s (%v)", def, err)
	}
	if _, err := os.Stat(def); err != nil {
		t.Fatalf("verify kept no state: %v", err)
	}

	// Delete the events: the attestations' tag.
	ctx := context.Background()
	r, err := remote.NewRepository(repo)
	if err != nil {
		t.Fatal(err)
	}
	r.PlainHTTP = true
	st, err := cli2status(t, keys+".pub", tag)
	if err != nil {
		t.Fatal(err)
	}
	att := "sha256-" + strings.TrimPrefix(st.Digest, "sha256:") + ".att"
	desc, err := r.Resolve(ctx, att)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Delete(ctx, desc); err != nil {
		t.Fatal(err)
	}

	for _, c := range [][]string{
		{"status", "--plain-http", "--key", keys + ".pub", tag, "--state-file", stateFile},
		{"status", "--plain-http", "--key", keys + ".pub", tag},
		{"verify", "--plain-http", "--key", keys + ".pub", "--signature-only", tag},
		{"ls", "--plain-http", "--key", keys + ".pub", repo},
		{"lifecycle", "retire", "--plain-http", "--key", keys + ".key", tag, "--reason", "x", "--state-file", stateFile},
	} {
		if out, stderr, code := runCLI(t, c...); code != cli.ExitVerification || !strings.Contains(out+stderr, "lifecycle rollback of "+st.Digest) {
			t.Fatalf("%v after the rollback: exit %d\n%s%s", c, code, out, stderr)
		}
	}
	out, _, code = runCLI(t, "status", "--plain-http", "--key", keys+".pub", tag, "--state-file", stateFile, "--output", "json")
	var failed struct {
		State         string
		ChainVerified *bool
		Error         string
		ExitCode      int
	}
	if json.Unmarshal([]byte(out), &failed) != nil || code != cli.ExitVerification || failed.ExitCode != cli.ExitVerification || failed.State != "published" ||
		failed.ChainVerified == nil || *failed.ChainVerified || !strings.Contains(failed.Error, "rollback") {
		t.Fatalf("status --output json after the rollback: exit %d\n%s", code, out)
	}
	// Without state, only the chain served counts.
	if out, _, code := runCLI(t, "status", "--plain-http", "--key", keys+".pub", tag, "--no-state"); code != 0 || firstLine(out) != "state: published" {
		t.Fatalf("status --no-state: exit %d\n%s", code, out)
	}
}

// cli2status reads a version's status as JSON.
func cli2status(t *testing.T, pub, ref string) (*verify.LifecycleStatus, error) {
	t.Helper()
	out, stderr, code := runCLI(t, "status", "--plain-http", "--key", pub, ref, "--output", "json")
	if code != 0 {
		return nil, fmt.Errorf("status: exit %d: %s: %w", code, stderr, errdef.ErrVerification)
	}
	var st verify.LifecycleStatus
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// TestLifecycleStorageFormats records events as OCI 1.1 referrers and as
// sigstore bundles: the chain reads back from either.
func TestLifecycleStorageFormats(t *testing.T) {
	keys := newKeys(t)
	host := registrytest.New(t)
	for _, c := range []struct{ repo, flag, value string }{
		{"referrers", "--referrers", ""},
		{"bundle", "--signature-format", "bundle"},
	} {
		t.Run(c.repo, func(t *testing.T) {
			// One digest in two repositories shares its chain head in
			// a state file: each subtest keeps its own.
			t.Setenv("XDG_STATE_HOME", filepath.Join(t.TempDir(), "state"))
			repo := host + "/wf/" + c.repo
			if _, stderr, code := runCLI(t, "push", "--plain-http", "--offline", samples+"build-test-release.yaml", repo); code != 0 {
				t.Fatal(stderr)
			}
			tag := repo + ":1.4.0"
			if _, stderr, code := runCLI(t, "sign", "--plain-http", "--key", keys+".key", tag); code != 0 {
				t.Fatal(stderr)
			}
			args := []string{"lifecycle", "retire", "--plain-http", "--key", keys + ".key", tag, "--reason", "gone", c.flag}
			if c.value != "" {
				args = append(args, c.value)
			}
			for i := range 2 {
				out, stderr, code := runCLI(t, append(args, "--output", "json")...)
				var res struct {
					Existing bool
					State    string
				}
				if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.State != "retired" || res.Existing != (i == 1) {
					t.Fatalf("retire #%d: exit %d\n%s%s", i+1, code, out, stderr)
				}
			}
			if out, stderr, code := runCLI(t, "status", "--plain-http", "--key", keys+".pub", tag); code != 0 || firstLine(out) != "state: retired" {
				t.Fatalf("status: exit %d\n%s%s", code, out, stderr)
			}
		})
	}
}
