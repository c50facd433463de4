#!/usr/bin/env bash
# Load and races against the registry extension (one loopback `ociwf
# registry serve`):
#   (1) PUBLISHERS (default 16) processes publish new versions, each its
#       own, while VERIFIERS (default 16) verify versions already
#       published, for DURATION seconds (default 60). Prints p50/p99 of
#       publish and verify, wrong results (a verify that failed on a
#       version whose publish succeeded) and lost versions (a publish that
#       succeeded and whose tag is gone or does not verify afterwards).
#   (2) RACERS (default 20) processes publish the same version at once,
#       identical content: all must succeed, one manifest, one signature
#       per signer.
#   (3) RACERS processes publish the same version at once, each with
#       different content: exactly one must win, the others exit 4.
# Exits non-zero when any of these does not hold.
#
#   scripts/load.sh
#   DURATION=20 PUBLISHERS=4 VERIFIERS=4 scripts/load.sh
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${DURATION:-60} publishers=${PUBLISHERS:-16} verifiers=${VERIFIERS:-16} racers=${RACERS:-20}
work=$(mktemp -d)
source scripts/lib.sh
trap 'stop_registry; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
ociwf="$work/ociwf"
export XDG_STATE_HOME="$work/state" COSIGN_PASSWORD=load
start_registry "$ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"
"$ociwf" key generate --output-key-prefix "$work/k" >/dev/null
sample=testdata/workflows/build-test-release.yaml
now() { date +%s%N; }

# percentile FILE P: the P-th percentile (nearest rank) of the numbers in FILE.
percentile() {
  sort -n "$1" | awk -v p="$2" '{a[NR]=$1} END {if (NR==0) {print "-"; exit} i=int((p*NR+99)/100); if (i<1) i=1; print a[i]}'
}

# (1) publishers and verifiers
mkdir -p "$work/pub" "$work/ver"
: >"$work/published"
end=$(( $(date +%s) + duration ))
publisher() {
  local p=$1 i=0
  while (( $(date +%s) < end )); do
    i=$((i + 1))
    local v="$p.$i.0" wf="$work/pub/wf-$p.yaml"
    sed "s/^  version: .*/  version: $v/" "$sample" >"$wf"
    local t0; t0=$(now)
    if "$ociwf" publish --plain-http --offline --key "$work/k.key" "$wf" "$reg/load/wf" >/dev/null 2>>"$work/pub/err-$p"; then
      echo $(( ($(now) - t0) / 1000000 )) >>"$work/pub/ms-$p"
      echo "$v" >>"$work/published"
    else
      echo "$v" >>"$work/pub/failed"
    fi
  done
}
verifier() {
  local w=$1
  while (( $(date +%s) < end )); do
    local v; v=$(shuf -n 1 "$work/published" 2>/dev/null || true)
    if [[ -z $v ]]; then sleep 0.2; continue; fi   # nothing published yet
    local t0; t0=$(now)
    if "$ociwf" verify --plain-http --key "$work/k.pub" "$reg/load/wf:$v" >/dev/null 2>>"$work/ver/err-$w"; then
      echo $(( ($(now) - t0) / 1000000 )) >>"$work/ver/ms-$w"
    else
      echo "$v" >>"$work/ver/wrong"
    fi
  done
}
pids=()
for p in $(seq "$publishers"); do publisher "$p" & pids+=($!); done
for w in $(seq "$verifiers"); do verifier "$w" & pids+=($!); done
wait "${pids[@]}"
cat "$work"/pub/ms-* >"$work/pub.ms" 2>/dev/null || : >"$work/pub.ms"
cat "$work"/ver/ms-* >"$work/ver.ms" 2>/dev/null || : >"$work/ver.ms"
published=$(wc -l <"$work/published")
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }
failed=$(lines "$work/pub/failed")
wrong=$(lines "$work/ver/wrong")
# Every version published must be there and verify.
lost=0
if ! "$ociwf" verify --plain-http --key "$work/k.pub" --all "$reg/load/wf" >/dev/null 2>"$work/all.err"; then
  echo "verify --all failed:" >&2; tail -5 "$work/all.err" >&2
  rc_all=1
fi
"$ociwf" ls --plain-http --key "$work/k.pub" --output json "$reg/load/wf" >"$work/ls.json"
while read -r v; do
  grep -q "\"$v\"" "$work/ls.json" || { lost=$((lost + 1)); echo "lost: $v" >&2; }
done <"$work/published"
printf '%-28s %8s %8s %8s\n' "load (${duration}s)" count p50_ms p99_ms
printf '%-28s %8s %8s %8s\n' "publish ($publishers procs)" "$(wc -l <"$work/pub.ms")" "$(percentile "$work/pub.ms" 50)" "$(percentile "$work/pub.ms" 99)"
printf '%-28s %8s %8s %8s\n' "verify ($verifiers procs)" "$(wc -l <"$work/ver.ms")" "$(percentile "$work/ver.ms" 50)" "$(percentile "$work/ver.ms" 99)"
echo "publishes failed: $failed; wrong results: $wrong; lost versions: $lost (of $published published)"
rc=${rc_all:-0}
(( wrong == 0 && lost == 0 && failed == 0 )) || rc=1

# (2) and (3): racers on one version
race() {
  local name=$1 differ=$2
  mkdir -p "$work/$name"
  for r in $(seq "$racers"); do
    local wf="$work/$name/wf-$r.yaml"
    if [[ $differ == yes ]]; then
      sed "s/^  description: .*/  description: racer $r/" "$sample" >"$wf"
    else
      cp "$sample" "$wf"
    fi
  done
  local pids=()
  for r in $(seq "$racers"); do
    ( "$ociwf" publish --plain-http --offline --key "$work/k.key" "$work/$name/wf-$r.yaml" "$reg/race/$name:1.0.0" >/dev/null 2>"$work/$name/err-$r"; echo $? >"$work/$name/rc-$r" ) &
    pids+=($!)
  done
  wait "${pids[@]}"
  for r in $(seq "$racers"); do   # what the first failures said
    [[ $(cat "$work/$name/rc-$r") == 0 ]] || tail -2 "$work/$name/err-$r" | cut -c1-400 >>"$work/$name/errors"
  done
  [[ ! -f $work/$name/errors ]] || head -4 "$work/$name/errors" >&2
  cat "$work/$name"/rc-* | sort | uniq -c | awk '{printf "%s×exit %s  ", $1, $2} END {print ""}'
}
echo "same version, identical content, $racers processes:"
same=$(race same no)
echo "  $same"
ok0=$(cat "$work"/same/rc-* | grep -c '^0$' || true)
sigs=$("$ociwf" verify --plain-http --key "$work/k.pub" --output json "$reg/race/same:1.0.0" 2>/dev/null | grep -c '"keyId"\|"signer"' || true)
dgst=$("$ociwf" inspect --plain-http --output json "$reg/race/same:1.0.0" | sed -n 's/.*"digest": "\(sha256:[0-9a-f]*\)".*/\1/p' | head -1)
nsig=$(curl -fsS -H 'Accept: application/vnd.oci.image.manifest.v1+json' "http://$reg/v2/race/same/manifests/sha256-${dgst#sha256:}.sig" | grep -o '"mediaType":"application/vnd.dev.cosign.simplesigning.v1+json"' | wc -l)
echo "  all succeeded: $ok0 of $racers; signature layers by the one signer: $nsig"
(( ok0 == racers && nsig == 1 )) || rc=1
echo "same version, differing content, $racers processes:"
differ=$(race differ yes)
echo "  $differ"
won=$(cat "$work"/differ/rc-* | grep -c '^0$' || true)
lost4=$(cat "$work"/differ/rc-* | grep -c '^4$' || true)
echo "  winners: $won; exit 4: $lost4"
(( won == 1 && lost4 == racers - 1 )) || rc=1
exit $rc
