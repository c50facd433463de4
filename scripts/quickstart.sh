#!/usr/bin/env bash
# Quickstart on the embedded default, one line per step: builds ociwf and
# ociwf-registry, starts `ociwf registry serve` on loopback, makes signing
# keys and a trust policy, takes a workflow through the lifecycle (draft,
# review, approval, publication: push by digest, sign, attest SLSA
# provenance and SBOM, tag last), publishes two more (the nested one last,
# so its `uses` references resolve to digests), verifies, pulls back by
# digest, and shows that an overwrite is refused (exit 4), a key nobody
# signed with fails (exit 3) and a tampered blob in the registry's storage
# is detected (exit 3).
#
# Each command's full output goes to .quickstart/quickstart.log; a failing
# step prints it.
#
#   scripts/quickstart.sh            # registry on 127.0.0.1:5001
#   PORT=5002 scripts/quickstart.sh
set -euo pipefail
cd "$(dirname "$0")/.."
port=${PORT:-5001}
work=.quickstart
rm -rf "$work" && mkdir -p "$work"
log="$work/quickstart.log"
: >"$log"
ociwf="$work/ociwf"
# ociwf's lifecycle state file (rollback protection) lives in the work
# directory, not in the user's state directory.
export XDG_STATE_HOME="$PWD/$work/state"
export COSIGN_PASSWORD=${COSIGN_PASSWORD:-quickstart}

source scripts/lib.sh
trap stop_registry EXIT

# say STEP TEXT prints a step's one line, digests shortened.
say() { printf '%-10s %s\n' "$1" "$2" | sed -E 's/(sha256:[0-9a-f]{12})[0-9a-f]{52}/\1…/g'; }

# run CMD...: runs an ociwf command with its output in the log and its
# stdout in $out; on failure it shows the log and stops.
run() {
  printf '\n$ %s\n' "$*" >>"$log"
  if ! out=$("$@" 2>>"$log"); then
    printf '%s\n' "$out" >>"$log"
    echo "FAILED: $*" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  printf '%s\n' "$out" >>"$log"
}

# refused WANT CMD...: runs a command that must fail with exit code WANT;
# $why is the first line of its error.
refused() {
  local want=$1 code=0 err
  shift
  printf '\n$ %s   # must exit %s\n' "$*" "$want" >>"$log"
  err=$("$@" 2>&1 >>"$log") || code=$?
  printf '%s\n' "$err" >>"$log"
  if [[ $code -ne $want ]]; then
    echo "FAILED: $* exited $code, want $want" >&2
    tail -n 20 "$log" >&2
    exit 1
  fi
  why=$(printf '%s\n' "$err" | grep '^Error: ' | head -n1 | sed -E 's/^Error: //; s/^.*check failed: //')
}

started=$(date +%s)
# Filesystem storage only: the GCS and Azure drivers stay out of the build.
go build -tags ociwf_no_gcs,ociwf_no_azure -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
say build "ociwf and ociwf-registry built into $work/ in $(($(date +%s) - started)) s"

start_registry "$ociwf" "127.0.0.1:$port" "$work/registry" "$work/registry.log"
say registry "ociwf registry serve on $reg: write-once tags, referrers, audit log (log: $work/registry.log)"

for who in alice bob release; do
  run "$ociwf" key generate --output-key-prefix "$work/$who"
done
say keys "alice (author), bob (reviewer), release (CI): cosign key pairs in $work/, password from COSIGN_PASSWORD"

cat >"$work/policy.yaml" <<'EOF'
version: ociwf.dev/trust/v1
trustPolicies:
  - name: quickstart
    registryScopes: ["*"]
    signers:
      - {name: release, key: release.pub}
    require:
      attestations: [slsaprovenance1, cyclonedx]
    lifecycle:
      retired: deny
      signers:
        - {name: alice, key: alice.pub}
        - {name: bob, key: bob.pub}
      submit: [alice]
      approve: {signers: [bob], threshold: 1}
      publish: [release]
EOF
policy="$work/policy.yaml"
say policy "$policy: release signs; alice submits for review, bob approves, release publishes"

repo="$reg/workflows/build-test-release"
run "$ociwf" push --plain-http --draft testdata/workflows/build-test-release.yaml "$repo:draft"
draft=$(tail -n1 <<<"$out")
digest=${draft##*@}
say draft "pushed $repo@$digest as a draft: not signed, no version tag"

run "$ociwf" review submit --plain-http "$repo@$digest" --key "$work/alice.key" --policy "$policy"
say review "alice submitted it for review (a signed lifecycle event beside the artifact)"

refused 4 "$ociwf" approve --plain-http "$repo@$digest" --key "$work/alice.key" --policy "$policy"
say approve "alice may not approve (exit 4): ${why#*: }"
run "$ociwf" approve --plain-http "$repo@$digest" --key "$work/bob.key" --policy "$policy" --comment "looks right"
say approve "bob approved it: 1 of 1 approvals"

run "$ociwf" publish --plain-http --offline "$repo@$digest" --tag 1.4.0 --key "$work/release.key" --policy "$policy"
say publish "$repo:1.4.0: signed, SLSA provenance and SBOM attested, tag written last"

run "$ociwf" publish --plain-http --offline --key "$work/release.key" testdata/workflows/fan-out-fan-in.yaml "$reg/workflows/fan-out-fan-in"
sed "s/127.0.0.1:5001/$reg/g" testdata/workflows/nested-uses.yaml >"$work/nested-uses.yaml"
run "$ociwf" publish --plain-http --key "$work/release.key" "$work/nested-uses.yaml" "$reg/workflows/release-train"
pinned=$(tail -n1 <<<"$out")
say publish "fan-out-fan-in:2.0.1 and release-train:3.1.0 in one command each; release-train's uses are pinned to digests"

run "$ociwf" verify --plain-http --policy "$policy" "$repo:1.4.0"
say verify "$repo:1.4.0: $(grep -c '^  ok ' <<<"$out") checks ok (digests, signature, signed tag, provenance, SBOM, recompiled plan, lifecycle: $(sed -n 's/^  ok   lifecycle *state \([a-z]*\).*/\1/p' <<<"$out"))"

run "$ociwf" pull --plain-http --key "$work/release.pub" "$pinned" -o "$work/pulled"
say pull "release-train@${pinned##*@} verified, then written to $work/pulled/: $(cd "$work/pulled" && ls | paste -sd' ')"

refused 4 "$ociwf" publish --plain-http --offline --key "$work/release.key" testdata/workflows/fan-out-fan-in.yaml "$repo:1.4.0"
say overwrite "refused (exit 4): $why"

refused 3 "$ociwf" verify --plain-http --key "$work/bob.pub" "$repo:1.4.0"
say wrong-key "verify with bob's key fails (exit 3): $why"

# Tamper with the plan layer where the registry keeps it on disk.
run "$ociwf" inspect --plain-http "$repo:1.4.0"
layer=$(sed -n 's/^  plan.json *sha256:\([0-9a-f]*\) .*/\1/p' <<<"$out")
blob="$work/registry/docker/registry/v2/blobs/sha256/${layer:0:2}/$layer/data"
[[ -n $layer && -f $blob ]] || { echo "FAILED: no plan layer blob in $work/registry" >&2; exit 1; }
printf 'X' | dd of="$blob" bs=1 seek=10 conv=notrunc status=none
refused 3 "$ociwf" verify --plain-http --policy "$policy" "$repo:1.4.0"
say tamper "one byte of the plan blob changed on the registry's disk; verify fails (exit 3): $why"

printf '\nquickstart ok in %d s (every command and its output: %s)\n' "$(($(date +%s) - started))" "$log"
