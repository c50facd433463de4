#!/usr/bin/env bash
# Runs every benchmark in one go and writes docs/benchmarks.md (and its
# plot, docs/benchmarks.svg) from the figures of this one run:
#
#   - start-up of each binary (ociwf, ociwf-registry, stock cosign v2 and
#     v3, oras, crane, an empty Go program), round-robin;
#   - on one loopback `ociwf registry serve` shared by all that follow:
#     `ociwf publish` against the stock pipeline (scripts/bench-publish.sh,
#     one workflow, then a bulk publish), `ociwf verify` against the stock
#     pipeline and `ociwf verify --all` over 100, 300 and 1,000 versions
#     (scripts/bench-verify.sh);
#   - compile scaling (100 to 20,000 steps), the library benchmarks
#     (verify.Fetch against cosign's library, the verification cache,
#     one Verify, push and pull), and the registry extension's overhead
#     against plain Distribution at 32 clients (scripts/bench-registry.sh).
#
# It takes about 20 minutes on 2 cores. Run it on a quiet machine: the
# ratios come from rounds run side by side, the absolute figures do not
# travel. The sub-scripts still print their own figures and targets; the
# exit status is 1 if one of them missed a target (the page is written
# either way).
#
#   scripts/bench.sh
#   ROUNDS=5 COUNT=1 VERSIONS=200 OUT=/tmp/bench.md scripts/bench.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/tools.sh):$PATH"
export COUNT=${COUNT:-5} ROUNDS=${ROUNDS:-15}
versions=${VERSIONS:-1000}
md=${OUT:-docs/benchmarks.md}
svg=${md%.md}.svg
work=$(mktemp -d)
source scripts/lib.sh
trap 'stop_registry; rm -rf "$work"' EXIT
export BENCH_OUT="$work/results"
mkdir -p "$BENCH_OUT"
started=$(date +%s)

{
  printf 'machine\tcpu\t%s\n' "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
  printf 'machine\tcores\t%s\n' "$(nproc)"
  printf 'machine\tmemory\t%s\n' "$(awk '/^MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  printf 'machine\tkernel\t%s\n' "$(uname -sr)"
  printf 'machine\tgo\t%s\n' "$(go env GOVERSION)"
  printf 'machine\tcommit\t%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo ' (with local changes)')"
  printf 'machine\tdate\t%s\n' "$(date -u +%Y-%m-%d)"
  printf 'machine\tload_start\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
} > "$BENCH_OUT/machine.tsv"

echo "== start-up"
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
printf 'package main\n\nfunc main() {}\n' > "$work/empty.go"
go build -o "$work/empty" "$work/empty.go"
go run ./scripts/benchreport startup -rounds "${STARTUP_ROUNDS:-31}" \
  "ociwf version=$work/ociwf version" "ociwf-registry version=$work/ociwf-registry version" \
  "cosign version=$(command -v cosign) version" "cosign v3 version=$(command -v cosign3) version" \
  "oras version=$(command -v oras) version" "crane version=$(command -v crane) version" \
  "empty Go program=$work/empty" | tee "$BENCH_OUT/startup.tsv"

# One registry for every process benchmark; its metrics count requests.
start_registry "$work/ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"
export BENCH_REGISTRY="$reg" BENCH_REGISTRY_METRICS="$reg_metrics" BENCH_REGISTRY_PID="$registry_server"

status=0
echo; echo "== publish"
scripts/bench-publish.sh || status=1
MODE=bulk ROUNDS=${BULK_ROUNDS:-5} scripts/bench-publish.sh || status=1
echo; echo "== verify"
VERSIONS=$versions SIZES="${SIZES:-100 300 $versions}" scripts/bench-verify.sh || status=1
stop_registry

echo; echo "== compile"
go test ./ociwf/plan -run '^$' -bench 'Compile' -benchmem -count "$COUNT" | tee "$BENCH_OUT/compile.bench"
echo; echo "== library"
go test ./attest/verify -run '^$' -bench '^(BenchmarkVerify|BenchmarkFetchWarm|BenchmarkFetchPeer)$' -benchmem -count "$COUNT" | tee "$BENCH_OUT/library.bench"
go test ./ociwf -run '^$' -bench 'PushPull' -benchmem -count "$COUNT" | tee -a "$BENCH_OUT/library.bench"
echo; echo "== registry"
scripts/bench-registry.sh | tee "$BENCH_OUT/registry.bench" || status=1

{
  printf 'machine\tload_end\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  printf 'machine\tduration\t%s\n' "$(( ($(date +%s) - started) / 60 )) min"
} >> "$BENCH_OUT/machine.tsv"
readme=()
[[ -z ${OUT:-} ]] && readme=(-readme README.md) # a quick look to OUT leaves the README alone
go run ./scripts/benchreport render -in "$BENCH_OUT" -md "$md" -svg "$svg" "${readme[@]}"
echo; echo "wrote $md and $svg"
exit "$status"
