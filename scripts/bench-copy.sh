#!/usr/bin/env bash
# `ociwf copy --all` over VERSIONS (default 1,000) signed versions (seeded
# by TestSeed in attest/verify/bench_test.go: publish as ociwf does, with
# a signature, provenance, SBOM and the published event each) on one
# loopback `ociwf registry serve`, copied
#   (1) to an OCI layout directory,
#   (2) from it to a tar archive,
#   (3) from the archive to a second `ociwf registry serve`, verified there
#       with --key (verify --all of the destination included),
#   (4) again (1) and (3): reruns that find everything there;
# each at --concurrency CONCURRENCY (default 8); then, over the same
# versions, `ociwf monitor --once --all` (with a results log) and
# `ociwf report` (every published plan verified for what it uses). Prints
# wall time, versions/s and peak RSS of the ociwf process for each, and
# what was written.
#
#   scripts/bench-copy.sh
#   VERSIONS=200 CONCURRENCY=16 scripts/bench-copy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
versions=${VERSIONS:-1000}
concurrency=${CONCURRENCY:-8}
work=$(mktemp -d)
source scripts/lib.sh
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
go test -c -o "$work/verify.test" ./attest/verify
ociwf="$work/ociwf"
export XDG_STATE_HOME="$work/state" COSIGN_PASSWORD=bench

start_registry "$ociwf" 127.0.0.1:0 "$work/src" "$work/src.log"
src=$reg; pids+=("$registry"); registry=
start_registry "$ociwf" 127.0.0.1:0 "$work/dst" "$work/dst.log"
dst=$reg; pids+=("$registry"); registry=
"$ociwf" key generate --output-key-prefix "$work/k" >/dev/null

(cd attest/verify && OCIWF_SEED_REGISTRY="$src" OCIWF_SEED_KEY="$work/k.key" OCIWF_SEED_REPOSITORY=wf/many OCIWF_BENCH_VERSIONS="$versions" \
  "$work/verify.test" -test.run '^TestSeed$' -test.v -test.count 1) > "$work/seed.log" 2>&1 ||
  { echo "seeding failed:" >&2; cat "$work/seed.log" >&2; exit 1; }
sed -n 's/^ *bench_test.go:[0-9]*: /seeding: /p' "$work/seed.log"

# timed NAME ARGS...: runs ociwf copy --all ARGS and prints its figures.
timed() {
  local name=$1; shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time.txt" "$ociwf" copy --all --plain-http --concurrency "$concurrency" --output json "$@" > "$work/out.json" ||
    { echo "$name failed:" >&2; tail -c 2000 "$work/out.json" >&2; exit 1; }
  t1=$(date +%s.%N)
  rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/time.txt")
  python3 - "$name" "$t0" "$t1" "$rss" "$work/out.json" <<'PY'
import json, sys
name, t0, t1, rss, out = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
o = json.load(open(out))
n, s = len(o["versions"]), t1 - t0
print(f"{name:<34} {n} versions in {s:6.1f} s ({n / s:6.1f} versions/s), peak RSS {rss / 1024:6.1f} MiB; "
      f"wrote {o['manifests']} manifests, {o['blobs']} blobs, {o['bytes']} bytes; {o['skipped']} already there; "
      f"accessories {o['accessories']}, {o['lifecycleEvents']} lifecycle events; verified {o['verified']}")
PY
}

echo "== ociwf copy --all over $versions versions, --concurrency $concurrency"
timed "registry -> layout" "$src/wf/many" "oci:$work/layout"
timed "layout -> tar" "oci:$work/layout" "tar:$work/all.tar"
timed "tar -> registry, verified" --key "$work/k.pub" --signed-identity "$src/wf/many" "tar:$work/all.tar" "$dst/wf/many"
timed "rerun registry -> layout" "$src/wf/many" "oci:$work/layout"
timed "rerun tar -> registry, verified" --key "$work/k.pub" --signed-identity "$src/wf/many" "tar:$work/all.tar" "$dst/wf/many"
printf 'archive size %s MiB\n' "$(du -m "$work/all.tar" | cut -f1)"

# op NAME ARGS...: runs ociwf ARGS and prints its time and peak RSS.
op() {
  local name=$1; shift
  local t0 t1 rss
  t0=$(date +%s.%N)
  /usr/bin/time -v -o "$work/time.txt" "$ociwf" "$@" > "$work/out.json" ||
    { echo "$name failed:" >&2; tail -c 2000 "$work/out.json" >&2; exit 1; }
  t1=$(date +%s.%N)
  rss=$(sed -n 's/^[[:space:]]*Maximum resident set size (kbytes): //p' "$work/time.txt")
  python3 - "$name" "$t0" "$t1" "$rss" "$versions" <<'PY'
import sys
name, t0, t1, rss, n = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
s = t1 - t0
print(f"{name:<34} {n} versions in {s:6.1f} s ({n / s:6.1f} versions/s), peak RSS {rss / 1024:6.1f} MiB")
PY
}

echo "== operations over the same $versions versions"
op "monitor --once --all" monitor --once --all --plain-http --concurrency "$concurrency" --key "$work/k.pub" \
  --results-log "$work/checks.jsonl" --output json "$src/wf/many"
op "report (json)" report --plain-http --concurrency "$concurrency" --key "$work/k.pub" --monitor-log "$work/checks.jsonl" --output json "$src/wf/many"
op "report (html)" report --plain-http --concurrency "$concurrency" --key "$work/k.pub" --monitor-log "$work/checks.jsonl" --output html "$src/wf/many"
