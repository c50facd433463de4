#!/usr/bin/env bash
# Manifest PUT and GET latency, p50 and p99, at 32 concurrent clients
# through ociwf's registry (Distribution + ociwf's middleware and front)
# against plain Distribution configured the same way, both in one process
# (BenchmarkRegistry in policy/registryext). Rounds alternate which server
# goes first so both see the same machine state; the percentiles are over
# the requests of all rounds together, the ratios ours/plain of those.
# BenchmarkRegistry/audit repeats it with ociwf's audit log on.
# Target: p99 ours <= 1.10 x plain for PUT and for GET (default
# configuration); the exit status is 1 if it is missed.
#
#   scripts/bench-registry.sh                     # 7 rounds, 50 PUTs + GETs per client
#   ROUNDS=15 PER_CLIENT=100 scripts/bench-registry.sh
#   CPUPROFILE=/tmp/cpu.out scripts/bench-registry.sh   # go tool pprof /tmp/cpu.out.test /tmp/cpu.out
#
# "replicas" instead measures the same PUTs and GETs at 32 clients through
# a round-robin front before 3 replicas on one storage against 1 replica
# (BenchmarkReplicas): with flock(2) coordination and with Redis leases
# (redis-server from scripts/services.sh; skipped without it). It prints
# p50/p99 of each and the ratios 3/1; there is no target.
#
#   scripts/bench-registry.sh replicas
#   ROUNDS=3 PER_CLIENT=20 scripts/bench-registry.sh replicas
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-7}
out=$(mktemp)
trap 'rm -f "$out"' EXIT

if [[ ${1:-} == replicas ]]; then
  OCIWF_BENCH_PER_CLIENT="${PER_CLIENT:-50}" go test ./policy/registryext -run '^$' \
    -bench '^BenchmarkReplicas$' -benchtime "${rounds}x" -count 1 -timeout 60m | tee "$out"
  echo
  for b in filesystem redis; do
    grep -qE "^BenchmarkReplicas/$b(-[0-9]+)? " "$out" || { echo "replicas $b: not run (redis-server missing?)"; continue; }
    printf 'replicas %-10s %-4s %10s %10s %8s %10s %10s %8s\n' "$b" op "1 p50" "3 p50" ratio "1 p99" "3 p99" ratio
    for op in put get; do
      v() { awk -v b="$b" -v u="$1" '$1 ~ "^BenchmarkReplicas/" b "(-[0-9]+)?$" {
        for (i = 4; i <= NF; i++) if ($i == u) print $(i - 1) }' "$out"; }
      ms() { awk -v x="$(v "$op-$1-us")" 'BEGIN {printf "%.1fms", x / 1000}'; }
      printf '%-19s %-4s %10s %10s %8s %10s %10s %8s\n' "" "${op^^}" \
        "$(ms p50-one)" "$(ms p50-three)" "$(v "$op-p50-ratio")" \
        "$(ms p99-one)" "$(ms p99-three)" "$(v "$op-p99-ratio")"
    done
  done
  exit 0
fi
profile=()
# with the test binary next to the profile, for go tool pprof
[[ -n ${CPUPROFILE:-} ]] && profile=(-cpuprofile "$CPUPROFILE" -o "$CPUPROFILE.test")
OCIWF_BENCH_PER_CLIENT="${PER_CLIENT:-50}" go test ./policy/registryext -run '^$' \
  -bench '^BenchmarkRegistry$' -benchtime "${rounds}x" -count 1 -timeout 60m "${profile[@]}" | tee "$out"

metric() { # benchmark unit: the value the benchmark reported for unit
  awk -v b="$1" -v u="$2" '$1 ~ "^BenchmarkRegistry/" b "(-[0-9]+)?$" {
    for (i = 4; i <= NF; i++) if ($i == u) print $(i - 1) }' "$out"
}
echo
status=0
for b in default audit; do
  printf 'registry %-8s  %-4s %12s %12s %8s %12s %12s %8s\n' "$b" op "plain p50" "ours p50" ratio "plain p99" "ours p99" ratio
  for op in put get; do
    ms() { awk -v v="$(metric "$b" "$op-$1-us")" 'BEGIN {printf "%.1fms", v / 1000}'; }
    printf '%-18s  %-4s %12s %12s %8s %12s %12s %8s\n' "" "${op^^}" \
      "$(ms p50-plain)" "$(ms p50-ours)" "$(metric "$b" "$op-p50-ratio")" \
      "$(ms p99-plain)" "$(ms p99-ours)" "$(metric "$b" "$op-p99-ratio")"
  done
done
for op in put get; do
  r=$(metric default "$op-p99-ratio")
  awk -v r="$r" -v op="${op^^}" 'BEGIN {ok = r <= 1.10; printf "target %s p99 ours/plain <= 1.10: %s (%s)\n", op, ok ? "met" : "NOT met", r; exit !ok}' || status=1
done
exit "$status"
