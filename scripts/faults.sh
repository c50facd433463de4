#!/usr/bin/env bash
# The fault matrix: each client command (publish, sign, sign --referrers,
# attest --referrers, lifecycle deprecate, approve, copy) run under each
# fault a fault proxy injects between ociwf and a real registry (5xx, 429
# with Retry-After, reset connections, answers lost after the write, cut
# bodies, stalls, other bytes, no Docker-Content-Digest, a referrers list
# that drops an entry), then rerun with the fault cleared; and a registry
# restarted mid-publish. Prints the matrix; every cell must read
# "succeeded + verified" or "failed cleanly ... + no tag". Exits non-zero
# on any other cell or a failed test.
#
#   scripts/faults.sh
#   PARALLEL=2 scripts/faults.sh
set -euo pipefail
cd "$(dirname "$0")/.."
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
OCIWF_FAULT_MATRIX=full go test ./cmd/ociwf -run '^(TestFaultMatrix|TestRegistryRestartMidPublish)$' -count=1 -v -parallel "${PARALLEL:-4}" -timeout 10m >"$log" 2>&1 || rc=$?
# The matrix, as the test prints it.
sed -n '/FAULT MATRIX/,/^ *MATRIX [0-9]* broken cells/p' "$log" | sed 's/^ \{8\}//'
grep -E '^\s*--- (PASS|FAIL): TestRegistryRestartMidPublish' "$log" | sed 's/^ *//' || true
if grep -q 'BROKEN' "$log" || ! grep -q 'MATRIX 0 broken cells' "$log"; then
  rc=1
fi
if [[ $rc -ne 0 ]]; then
  echo "faults: FAILED; the failing output:" >&2
  grep -E -B2 -A12 -- '--- FAIL|BROKEN|panic' "$log" | head -200 >&2
  exit 1
fi
echo "faults: every cell succeeded and verified, or failed cleanly with no tag"
