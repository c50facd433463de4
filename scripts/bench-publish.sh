#!/usr/bin/env bash
# Wall time of `ociwf publish` against the stock pipeline that does the same
# job (`oras push` + `cosign sign` + `cosign attest` x2, SLSA provenance and
# SBOM), both on one loopback `ociwf registry serve`, in one run. Rounds
# alternate between the two so both see the same machine state; every round
# publishes new content (a different version) so nothing is deduplicated.
# ociwf's figure includes compiling the workflow; the stock pipeline gets
# its files ready-made.
#
#   scripts/bench-publish.sh          # 15 rounds
#   ROUNDS=30 scripts/bench-publish.sh
#   MODE=bulk ROUNDS=3 scripts/bench-publish.sh
#
# MODE=bulk: each round publishes N=20 workflows (variants of
# testdata/workflows/*.yaml with distinct names and versions, written
# outside the timed section) with one bulk `ociwf publish DIR PREFIX`,
# against 20 runs of the stock pipeline; target: bulk >= 8x faster.
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/tools.sh):$PATH"
rounds=${ROUNDS:-15}
work=$(mktemp -d)
source scripts/lib.sh
trap 'stop_registry; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
ociwf="$work/ociwf"
# ociwf's lifecycle state file (rollback protection) lives in the work
# directory, not in the user's state directory.
export XDG_STATE_HOME="$work/state"
export COSIGN_PASSWORD=bench COSIGN_YES=true
# scripts/bench.sh runs every benchmark against one registry, BENCH_REGISTRY.
if [[ -n ${BENCH_REGISTRY:-} ]]; then reg=$BENCH_REGISTRY; else
  start_registry "$ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"
fi
"$ociwf" key generate --output-key-prefix "$work/k" >/dev/null

# The stock pipeline's inputs: the same three layers and a provenance
# predicate, prepared outside the timed section.
"$ociwf" publish --plain-http --offline --key "$work/k.key" testdata/workflows/build-test-release.yaml "$reg/prep/wf:1.4.0" >/dev/null
"$ociwf" pull --plain-http --key "$work/k.pub" "$reg/prep/wf:1.4.0" -o "$work/layers" >/dev/null
cosign verify-attestation --key "$work/k.pub" --insecure-ignore-tlog --type slsaprovenance1 "$reg/prep/wf:1.4.0" 2>/dev/null |
  sed -E 's/.*"payload":"([^"]*)".*/\1/' | base64 -d |
  sed -E 's/.*"predicate":(\{.*\})\}$/\1/' > "$work/provenance.json"   # the statement's last field
grep -q '^{"buildDefinition"' "$work/provenance.json" || { echo "could not read the provenance predicate" >&2; exit 1; }

now() { date +%s%N; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sum() { printf '%s\n' "$@" | awk '{s+=$1} END {print s}'; }

if [ "${MODE:-}" = bulk ]; then
  n=${N:-20}
  stock=() ours=()
  for i in $(seq "$rounds"); do
    # Inputs of both, outside the timed section.
    mkdir -p "$work/bulk-$i" "$work/plans-$i"
    for j in $(seq "$n"); do
      srcs=(testdata/workflows/build-test-release.yaml testdata/workflows/fan-out-fan-in.yaml)
      sed -e "s/^  name: .*/  name: wf-$j/" -e "s/^  version: .*/  version: 8.$i.$j/" "${srcs[$((j % 2))]}" > "$work/bulk-$i/wf-$j.yaml"
      sed "s/\"version\":\"1.4.0\"/\"version\":\"8.$i.$j\"/" "$work/layers/plan.json" > "$work/plans-$i/plan-$j.json"
    done
    t0=$(now)
    for j in $(seq "$n"); do
      cp "$work/plans-$i/plan-$j.json" "$work/plan.json"
      dg=$(cd "$work" && oras push --plain-http --artifact-type application/vnd.ociwf.workflow.v1+json \
          --format go-template='{{.digest}}' "$reg/stock/wf-$j:8.$i.$j" \
          layers/workflow.yaml:application/vnd.ociwf.workflow.dsl.v1+yaml \
          plan.json:application/vnd.ociwf.workflow.plan.v1+json \
          layers/sbom.cdx.json:application/vnd.cyclonedx+json)
      d="$reg/stock/wf-$j@$dg"
      cosign sign --key "$work/k.key" --tlog-upload=false "$d" >/dev/null 2>&1
      cosign attest --key "$work/k.key" --tlog-upload=false --type slsaprovenance1 --predicate "$work/provenance.json" "$d" >/dev/null 2>&1
      cosign attest --key "$work/k.key" --tlog-upload=false --type cyclonedx --predicate "$work/layers/sbom.cdx.json" "$d" >/dev/null 2>&1
    done
    t1=$(now)
    stock+=($(( (t1 - t0) / 1000000 )))

    t0=$(now)
    "$ociwf" publish --plain-http --offline --key "$work/k.key" "$work/bulk-$i" "$reg/ours" >/dev/null
    t1=$(now)
    ours+=($(( (t1 - t0) / 1000000 )))
  done
  ratios=()
  for i in "${!stock[@]}"; do ratios+=("$(awk -v o="${ours[$i]}" -v s="${stock[$i]}" 'BEGIN {printf "%.2f", s/o}')"); done
  mr=$(median "${ratios[@]}")
  printf 'rounds                  %d, %d workflows each\n' "$rounds" "$n"
  printf 'stock pipeline x%d (ms)  %s\n' "$n" "${stock[*]}"
  printf 'ociwf bulk publish (ms) %s\n' "${ours[*]}"
  printf 'stock pipeline          median %s ms  (%d x oras push + cosign sign + cosign attest x2)\n' "$(median "${stock[@]}")" "$n"
  printf 'ociwf bulk publish      median %s ms  (one command: compile + push + sign + attest x2 + tag, each)\n' "$(median "${ours[@]}")"
  printf 'speedup per round       median %sx (stock/bulk, each round pairs both on the same machine state)\n' "$mr"
  printf 'load average            %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
  if [[ -n ${BENCH_OUT:-} ]]; then # the figures, for scripts/bench.sh's report
    printf 'bulk\tworkflows\t%s\nbulk\tstock_ms\t%s\nbulk\tours_ms\t%s\n' "$n" "${stock[*]}" "${ours[*]}" >> "$BENCH_OUT/publish.tsv"
  fi
  awk -v r="$mr" 'BEGIN {ok = r >= 8; printf "target bulk >= 8x faster: %s\n", ok ? "met" : "NOT met"; exit !ok}'
  exit
fi

stock=() ours=()
for i in $(seq "$rounds"); do
  # stock: a fresh version each round (the plan changes, so the digest does)
  sed "s/\"version\":\"1.4.0\"/\"version\":\"9.$i.0\"/" "$work/layers/plan.json" > "$work/plan.json"
  t0=$(now)
  dg=$(cd "$work" && oras push --plain-http --artifact-type application/vnd.ociwf.workflow.v1+json \
      --format go-template='{{.digest}}' "$reg/stock/wf:9.$i.0" \
      layers/workflow.yaml:application/vnd.ociwf.workflow.dsl.v1+yaml \
      plan.json:application/vnd.ociwf.workflow.plan.v1+json \
      layers/sbom.cdx.json:application/vnd.cyclonedx+json)
  d="$reg/stock/wf@$dg"
  cosign sign --key "$work/k.key" --tlog-upload=false "$d" >/dev/null 2>&1
  cosign attest --key "$work/k.key" --tlog-upload=false --type slsaprovenance1 --predicate "$work/provenance.json" "$d" >/dev/null 2>&1
  cosign attest --key "$work/k.key" --tlog-upload=false --type cyclonedx --predicate "$work/layers/sbom.cdx.json" "$d" >/dev/null 2>&1
  t1=$(now)
  stock+=($(( (t1 - t0) / 1000000 )))

  sed "s/^  version: .*/  version: 9.$i.0/" testdata/workflows/build-test-release.yaml > "$work/wf.yaml"
  t0=$(now)
  "$ociwf" publish --plain-http --offline --key "$work/k.key" "$work/wf.yaml" "$reg/ours/wf" >/dev/null
  t1=$(now)
  ours+=($(( (t1 - t0) / 1000000 )))
done

median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sum() { printf '%s\n' "$@" | awk '{s+=$1} END {print s}'; }
median() { printf '%s\n' "$@" | sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
sum() { printf '%s\n' "$@" | awk '{s+=$1} END {print s}'; }
ratios=()
for i in "${!stock[@]}"; do ratios+=("$(awk -v o="${ours[$i]}" -v s="${stock[$i]}" 'BEGIN {printf "%.4f", o/s}')"); done
ms=$(median "${stock[@]}") mo=$(median "${ours[@]}") mr=$(median "${ratios[@]}")
printf 'rounds                  %d\n' "$rounds"
printf 'stock pipeline   (ms)   %s\n' "${stock[*]}"
printf 'ociwf publish    (ms)   %s\n' "${ours[*]}"
printf 'stock pipeline          median %s ms, total %s ms  (oras push + cosign sign + cosign attest x2)\n' "$ms" "$(sum "${stock[@]}")"
printf 'ociwf publish           median %s ms, total %s ms  (compile + push + sign + attest x2 + tag)\n' "$mo" "$(sum "${ours[@]}")"
printf 'ratio of totals         %.3f\n' "$(awk -v o="$(sum "${ours[@]}")" -v s="$(sum "${stock[@]}")" 'BEGIN {print o/s}')"
printf 'ratio per round         median %s (each round pairs both pipelines on the same machine state)\n' "$mr"
if [[ -n ${BENCH_OUT:-} ]]; then # the figures, for scripts/bench.sh's report
  printf 'publish\tstock_ms\t%s\npublish\tours_ms\t%s\n' "${stock[*]}" "${ours[*]}" >> "$BENCH_OUT/publish.tsv"
fi
awk -v r="$mr" 'BEGIN {ok = r <= 1/3; printf "target ociwf/stock <= 0.333: %s\n", ok ? "met" : "NOT met"; exit !ok}'
