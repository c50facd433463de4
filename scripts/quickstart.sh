#!/usr/bin/env bash
# Quickstart on the embedded default: builds ociwf, starts `ociwf registry
# serve` on loopback, makes a signing key, publishes the sample workflows
# (compile, push, sign, attest SLSA provenance and SBOM, tag last; the nested
# one last, so its `uses` references resolve to the two published before
# it), shows that tags are write-once, verifies signature and attestations
# (and that the wrong key fails), and pulls a workflow back by digest.
#
#   scripts/quickstart.sh            # registry on 127.0.0.1:5001
#   PORT=5002 scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-5001}
work=.quickstart
rm -rf "$work" && mkdir -p "$work"
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
ociwf="$work/ociwf"
# ociwf's lifecycle state file (rollback protection) lives in the work
# directory, not in the user's state directory.
export XDG_STATE_HOME="$PWD/$work/state"

source scripts/lib.sh
trap stop_registry EXIT
start_registry "$ociwf" "127.0.0.1:$port" "$work/registry" "$work/registry.log"
echo "ociwf registry serve on $reg (log: $work/registry.log)"

step() { printf '\n== %s\n' "$*"; }

step "make a cosign-compatible signing key (password from COSIGN_PASSWORD)"
export COSIGN_PASSWORD=${COSIGN_PASSWORD:-quickstart}
"$ociwf" key generate --output-key-prefix "$work/release"
key="$work/release.key" pub="$work/release.pub"

step "publish two fully pinned workflows: push by digest, sign, attest, tag last"
"$ociwf" publish --plain-http --offline --key "$key" testdata/workflows/build-test-release.yaml "$reg/workflows/build-test-release"
"$ociwf" publish --plain-http --offline --key "$key" testdata/workflows/fan-out-fan-in.yaml "$reg/workflows/fan-out-fan-in"

step "publish a workflow that uses them: compile pins each uses to a digest"
sed "s/127.0.0.1:5001/$reg/g" testdata/workflows/nested-uses.yaml > "$work/nested-uses.yaml"
pinned=$("$ociwf" publish --plain-http --key "$key" "$work/nested-uses.yaml" "$reg/workflows/release-train" | tail -n1)
echo "$pinned"

step "publishing again is idempotent: same digest, nothing signed twice"
"$ociwf" publish --plain-http --offline --key "$key" testdata/workflows/build-test-release.yaml "$reg/workflows/build-test-release"

step "moving a published tag is refused (exit 4)"
set +e
"$ociwf" publish --plain-http --offline --key "$key" testdata/workflows/fan-out-fan-in.yaml "$reg/workflows/build-test-release:1.4.0"
code=$?
set -e
[[ $code -eq 4 ]] || { echo "expected exit 4, got $code" >&2; exit 1; }

step "verify: signature by the key, the signed tag, SLSA provenance and SBOM attestations"
"$ociwf" verify --plain-http --key "$pub" --require-signed-tag "$reg/workflows/release-train:3.1.0"

step "a key nobody signed with fails verification (exit 3, naming the check)"
"$ociwf" key generate --output-key-prefix "$work/other" >/dev/null
set +e
"$ociwf" verify --plain-http --key "$work/other.pub" "$pinned"
code=$?
set -e
[[ $code -eq 3 ]] || { echo "expected exit 3, got $code" >&2; exit 1; }

step "inspect, and pull by digest (verified first, as above)"
"$ociwf" inspect --plain-http "$pinned"
"$ociwf" pull --plain-http --key "$pub" "$pinned" -o "$work/pulled"
grep -o '"uses":"[^"]*"' "$work/pulled/plan.json"
printf '\nquickstart ok\n'
