#!/usr/bin/env bash
# Verification benchmarks against one loopback `ociwf registry serve`:
#
# (a) Wall time of one full `ociwf verify --key` (eight checks: tag to
#     digest, manifest and blobs re-hashed, signature, SLSA provenance and
#     SBOM attestations, SBOM against the layer, recompile, lifecycle)
#     against the stock pipeline that comes closest: `cosign verify` +
#     `cosign verify-attestation` for the provenance and for the SBOM +
#     `oras pull` + `sha256sum -c` of the pulled files against the
#     manifest's layer digests (fetched once, outside the timed section).
#     Rounds alternate between the two (and which goes first), both run as
#     processes, timed by wall clock. Target: ociwf <= 1/5 of stock.
#     HTTP requests: ociwf's own count (--output json), and for both sides
#     what the registry's metrics count in one untimed round.
#
# (b) `ociwf verify --all` over VERSIONS (default 1,000) signed versions
#     (and first over each of SIZES, if given, e.g. SIZES="100 300 1000"),
#     seeded by TestSeed in attest/verify/bench_test.go (publish as ociwf
#     does, key decrypted once, 8 at a time), at --concurrency 8 and 16,
#     ALL_ROUNDS runs each. Reports versions/s (the summary's, and versions
#     over the process's wall time), the ratio of versions/s to the stock
#     pipeline's per-version rate (1 / its median full verify time from
#     (a), same run), peak RSS of the ociwf process, and where the time
#     goes: requests per version, client CPU (ociwf, user + system) and
#     registry CPU (the registry process's utime + stime from /proc) per
#     version, with the load average.
#     Targets: ratio >= 80x, peak RSS <= 128 MiB.
#
#   scripts/bench-verify.sh                      # 15 rounds, 1,000 versions
#   ROUNDS=30 VERSIONS=200 ALL_ROUNDS=1 scripts/bench-verify.sh
#
# Exits 1 if a target is missed (after printing every figure).
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/tools.sh):$PATH"
rounds=${ROUNDS:-15}
versions=${VERSIONS:-1000}
all_rounds=${ALL_ROUNDS:-3}
concurrencies=(8 16)
work=$(mktemp -d)
source scripts/lib.sh
trap 'stop_registry; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
go test -c -o "$work/verify.test" ./attest/verify
ociwf="$work/ociwf"
# ociwf's lifecycle state file (rollback protection) lives in the work
# directory, not in the user's state directory.
export XDG_STATE_HOME="$work/state"
export COSIGN_PASSWORD=bench

# scripts/bench.sh runs every benchmark against one registry:
# BENCH_REGISTRY (its host:port), BENCH_REGISTRY_METRICS (its metrics
# listener, which counts requests) and BENCH_REGISTRY_PID (the process
# whose CPU time is the registry's).
if [[ -n ${BENCH_REGISTRY:-} ]]; then
  reg=$BENCH_REGISTRY reg_metrics=$BENCH_REGISTRY_METRICS registry_server=$BENCH_REGISTRY_PID
else
  start_registry "$ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"
fi
"$ociwf" key generate --output-key-prefix "$work/k" >/dev/null
pub="$work/k.pub"

ref="$reg/wf/release:1.4.0"
"$ociwf" publish --plain-http --offline --key "$work/k.key" testdata/workflows/build-test-release.yaml "$ref" >/dev/null

# The stock side's expected checksums: the manifest's layer digests, by the
# file names oras pull writes (org.opencontainers.image.title).
oras manifest fetch --plain-http --format go-template='{{range .content.layers}}{{trimPrefix "sha256:" .digest}}  {{index .annotations "org.opencontainers.image.title"}}{{"\n"}}{{end}}' "$ref" > "$work/layers.sha256"
[[ $(wc -l < "$work/layers.sha256") -eq 3 ]] || { echo "could not read the layer digests:" >&2; cat "$work/layers.sha256" >&2; exit 1; }

stock_verify() {
  rm -rf "$work/pull"
  cosign verify --key "$pub" --insecure-ignore-tlog "$ref" >/dev/null 2>&1 &&
    cosign verify-attestation --key "$pub" --insecure-ignore-tlog --type slsaprovenance1 "$ref" >/dev/null 2>&1 &&
    cosign verify-attestation --key "$pub" --insecure-ignore-tlog --type cyclonedx "$ref" >/dev/null 2>&1 &&
    oras pull --plain-http "$ref" -o "$work/pull" >/dev/null &&
    (cd "$work/pull" && sha256sum --quiet --strict -c "$work/layers.sha256")
}
ours_verify() {
  "$ociwf" verify --plain-http --key "$pub" --output json "$ref" > "$work/report.json"
}
# top KEY FILE prints a top-level field of an indented JSON document.
top() { sed -n "s/^  \"$1\": \(.*\)$/\1/p" "$2" | sed 's/,$//'; }

# Untimed round: warms both sides up, checks they pass, counts requests.
n0=$(served)
stock_verify || { echo "the stock pipeline failed to verify $ref" >&2; exit 1; }
n1=$(served)
ours_verify || { echo "ociwf verify failed:" >&2; cat "$work/report.json" >&2; exit 1; }
n2=$(served)
stock_served=$((n1 - n0)) ours_served=$((n2 - n1)) ours_counted=$(top requests "$work/report.json")

now() { date +%s%N; }
stock=() ours=() inproc=()
time_stock() {
  local t0 t1
  rm -rf "$work/pull"
  t0=$(now)
  stock_verify || { echo "the stock pipeline failed to verify $ref" >&2; exit 1; }
  t1=$(now)
  stock+=($(( (t1 - t0) / 1000000 )))
}
time_ours() {
  local t0 t1
  t0=$(now)
  ours_verify || { echo "ociwf verify failed:" >&2; cat "$work/report.json" >&2; exit 1; }
  t1=$(now)
  ours+=($(( (t1 - t0) / 1000000 )))
  [[ $(top verified "$work/report.json") == true ]] || { echo "ociwf verify: not verified" >&2; exit 1; }
  inproc+=("$(awk -v n="$(top durationNanos "$work/report.json")" 'BEGIN {printf "%.1f", n/1e6}')")
}
for i in $(seq "$rounds"); do
  if (( i % 2 )); then time_stock; time_ours; else time_ours; time_stock; fi
done

median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sum() { printf '%s\n' "$@" | awk '{s+=$1} END {print s}'; }
ratios=()
for i in "${!stock[@]}"; do ratios+=("$(awk -v o="${ours[$i]}" -v s="${stock[$i]}" 'BEGIN {printf "%.4f", o/s}')"); done
ms=$(median "${stock[@]}") mo=$(median "${ours[@]}") mr=$(median "${ratios[@]}")
fail=0
echo "== (a) single full verify of $ref"
printf 'rounds                  %d\n' "$rounds"
printf 'stock pipeline   (ms)   %s\n' "${stock[*]}"
printf 'ociwf verify     (ms)   %s\n' "${ours[*]}"
printf 'stock pipeline          median %s ms, total %s ms  (cosign verify + cosign verify-attestation x2 + oras pull + sha256sum -c)\n' "$ms" "$(sum "${stock[@]}")"
printf 'ociwf verify            median %s ms, total %s ms  (process wall time; in-process report duration median %s ms)\n' "$mo" "$(sum "${ours[@]}")" "$(median "${inproc[@]}")"
printf 'ratio of totals         %.3f\n' "$(awk -v o="$(sum "${ours[@]}")" -v s="$(sum "${stock[@]}")" 'BEGIN {print o/s}')"
printf 'ratio per round         median %s\n' "$mr"
printf 'HTTP requests / verify  ociwf %s (its count); the registry served: ociwf %s, stock %s\n' "$ours_counted" "$ours_served" "$stock_served"
awk -v r="$mr" 'BEGIN {ok = r <= 0.2; printf "target ociwf/stock <= 0.200: %s\n", ok ? "met" : "NOT met"; exit !ok}' || fail=1
if [[ -n ${BENCH_OUT:-} ]]; then # the figures, for scripts/bench.sh's report
  printf 'verify\tstock_ms\t%s\nverify\tours_ms\t%s\nverify\tours_inproc_ms\t%s\n' "${stock[*]}" "${ours[*]}" "${inproc[*]}" >> "$BENCH_OUT/verify.tsv"
  printf 'verify\trequests\t%s\nverify\tserved_ours\t%s\nverify\tserved_stock\t%s\n' "$ours_counted" "$ours_served" "$stock_served" >> "$BENCH_OUT/verify.tsv"
fi
echo "load average            $(cut -d' ' -f1-3 /proc/loadavg)"

echo
# seed N REPOSITORY publishes N versions to REPOSITORY (as ociwf publish
# does, key decrypted once, 8 at a time).
seed() {
  (cd attest/verify && OCIWF_SEED_REGISTRY="$reg" OCIWF_SEED_KEY="$work/k.key" OCIWF_SEED_REPOSITORY="$2" OCIWF_BENCH_VERSIONS="$1" \
    "$work/verify.test" -test.run '^TestSeed$' -test.v -test.count 1) > "$work/seed.log" 2>&1 ||
    { echo "seeding failed:" >&2; cat "$work/seed.log" >&2; exit 1; }
  sed -n 's/^ *bench_test.go:[0-9]*: /seeding: /p' "$work/seed.log"
}
# run_peak OUT CMD... runs CMD with stdout to OUT and sets $rss_kib to its
# peak resident set size.
run_peak() {
  local out=$1; shift
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -v -o "$work/time.txt" "$@" > "$out" || return
    rss_kib=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/time.txt")
  else # poll VmHWM (a high-water mark) until the process exits
    "$@" > "$out" & local pid=$! v
    rss_kib=0
    while kill -0 "$pid" 2>/dev/null; do
      v=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$pid/status" 2>/dev/null || true)
      [[ -n $v ]] && rss_kib=$v
      sleep 0.01
    done
    wait "$pid" || return
  fi
}
# cpu_ticks PID prints the process's user + system CPU time in clock ticks.
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
tck=$(getconf CLK_TCK)
stock_rate=$(awk -v ms="$ms" 'BEGIN {printf "%.2f", 1000 / ms}')
printf 'stock pipeline rate     %s versions/s (1 / its median full verify, %s ms, from (a))\n' "$stock_rate" "$ms"
# SIZES (default VERSIONS) are the repository sizes measured, smallest
# first; the targets apply to VERSIONS.
read -r -a sizes <<< "${SIZES:-$versions}"
for n_versions in "${sizes[@]}"; do
echo
echo "== (b) ociwf verify --all over $n_versions versions"
many="wf/n$n_versions"
seed "$n_versions" "$many"
for c in "${concurrencies[@]}"; do
  vps=() wall=() rss=() ccpu=() rcpu=()
  for _ in $(seq "$all_rounds"); do
    r0=$(cpu_ticks "$registry_server")
    t0=$(now)
    run_peak "$work/all.json" "$ociwf" verify --all --plain-http --key "$pub" --concurrency "$c" --output json "$reg/$many" ||
      { echo "ociwf verify --all failed:" >&2; grep -v '^    ' "$work/all.json" >&2; exit 1; }
    t1=$(now)
    r1=$(cpu_ticks "$registry_server")
    rcpu+=("$(awk -v a="$r0" -v b="$r1" -v t="$tck" -v n="$n_versions" 'BEGIN {printf "%.2f", (b - a) * 1000 / t / n}')")
    if [[ -f $work/time.txt ]]; then
      ccpu+=("$(awk -F': ' -v n="$n_versions" '/User time|System time/ {s += $2} END {printf "%.2f", s * 1000 / n}' "$work/time.txt")")
    fi
    n=$(top versions "$work/all.json") ok=$(top verified "$work/all.json")
    [[ $n == "$n_versions" && $ok == "$n_versions" ]] || { echo "verify --all: $ok of $n versions verified, want $n_versions" >&2; exit 1; }
    vps+=("$(awk -v v="$(top versionsPerSecond "$work/all.json")" 'BEGIN {printf "%.0f", v}')")
    wall+=("$(awk -v n="$n" -v t=$((t1 - t0)) 'BEGIN {printf "%.0f", n / (t / 1e9)}')")
    rss+=("$(awk -v k="$rss_kib" 'BEGIN {printf "%.1f", k / 1024}')")
    reqs=$(awk -v r="$(top requests "$work/all.json")" -v n="$n" 'BEGIN {printf "%.2f", r / n}')
  done
  printf 'concurrency %-3s  versions/s %s (median %s; over process wall time %s, median %s); peak RSS MiB %s (max %s); %s requests/version\n' \
    "$c" "${vps[*]}" "$(median "${vps[@]}")" "${wall[*]}" "$(median "${wall[@]}")" "${rss[*]}" "$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)" "$reqs"
  printf '                 CPU ms/version: client %s (median %s), registry %s (median %s); load average %s\n' \
    "${ccpu[*]:-n/a}" "$( ((${#ccpu[@]})) && median "${ccpu[@]}" || echo n/a)" "${rcpu[*]}" "$(median "${rcpu[@]}")" "$(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -n ${BENCH_OUT:-} ]]; then
    printf 'verify_all\tvps/%s/%s\t%s\nverify_all\trss/%s/%s\t%s\nverify_all\treqs/%s/%s\t%s\n' \
      "$n_versions" "$c" "${vps[*]}" "$n_versions" "$c" "${rss[*]}" "$n_versions" "$c" "$reqs" >> "$BENCH_OUT/verify.tsv"
    printf 'verify_all\tcpu_client/%s/%s\t%s\nverify_all\tcpu_registry/%s/%s\t%s\n' \
      "$n_versions" "$c" "${ccpu[*]:-}" "$n_versions" "$c" "${rcpu[*]}" >> "$BENCH_OUT/verify.tsv"
  fi
  [[ $n_versions == "$versions" ]] || continue # the targets are for VERSIONS
  ratio=$(awk -v v="$(median "${vps[@]}")" -v r="$stock_rate" 'BEGIN {printf "%.1f", v / r}')
  awk -v x="$ratio" -v c="$c" 'BEGIN {ok = x >= 80; printf "target >= 80x the stock per-version rate at concurrency %s: %sx, %s\n", c, x, ok ? "met" : "NOT met"; exit !ok}' || fail=1
  awk -v m="$(printf '%s\n' "${rss[@]}" | sort -g | tail -1)" -v c="$c" 'BEGIN {ok = m <= 128; printf "target peak RSS <= 128 MiB at concurrency %s: %s\n", c, ok ? "met" : "NOT met"; exit !ok}' || fail=1
done
done
exit "$fail"
