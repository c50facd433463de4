# Lifecycle checks for scripts/interop.sh, which sources this file and
# calls lifecycle_checks on each registry, with $ociwf, $reg, $on, $work
# (keys ociwf.*), $off and its helpers (check, contains, fails, rejects).
#   L1. ociwf publish records the publication event and ociwf lifecycle
#       deprecate a deprecation (legacy format): stock cosign v2 and v3
#       verify-attestation --type https://ociwf.dev/lifecycle/event/v1
#       accept both with the key, and the deprecated state shows;
#   L2. the same in the sigstore bundle format, verified by cosign v3;
#   L3. ociwf lifecycle retire: ociwf verify exits 4 naming the state,
#       ociwf status still answers (state: retired) and stock cosign
#       verifies the retirement event.
event_type=https://ociwf.dev/lifecycle/event/v1

lifecycle_checks() {
  local pinned b
  pinned=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/lifecycle/legacy:1.4.0" | tail -n1)
  check "L1 ociwf lifecycle deprecate" \
    "$ociwf" lifecycle deprecate --plain-http --key "$work/ociwf.key" --reason "use 1.5.0" "$pinned"
  check "L1 cosign verify-attestation --type $event_type (published, deprecated)" \
    contains '"state":"deprecated"' \
    bash -c 'cosign verify-attestation --key "$1" --insecure-ignore-tlog --type "$2" "$3" | { sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | while read -r p; do printf "%s" "$p" | base64 -d; echo; done; }' \
    _ "$work/ociwf.pub" "$event_type" "$pinned"
  check "L1 cosign3 verify-attestation --type $event_type" \
    contains '"state":"published"' \
    bash -c 'cosign3 verify-attestation --key "$1" "${@:4}" --type "$2" "$3" | { sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | while read -r p; do printf "%s" "$p" | base64 -d; echo; done; }' \
    _ "$work/ociwf.pub" "$event_type" "$pinned" "${off[@]}"
  check "L1 ociwf verify warns: deprecated" contains "deprecated" "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$pinned"

  b=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" --signature-format bundle \
    --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
    testdata/workflows/build-test-release.yaml "$reg/lifecycle/bundle:1.4.0" | tail -n1)
  check "L2 ociwf lifecycle deprecate --signature-format bundle" \
    "$ociwf" lifecycle deprecate --plain-http --key "$work/ociwf.key" --signature-format bundle --reason "use 1.5.0" "$b"
  check "L2 cosign3 verify-attestation --type $event_type (bundles)" \
    contains '"state":"deprecated"' \
    bash -c 'cosign3 verify-attestation --key "$1" "${@:4}" --type "$2" "$3" | { sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | while read -r p; do printf "%s" "$p" | base64 -d; echo; done; }' \
    _ "$work/ociwf.pub" "$event_type" "$b" "${off[@]}"

  check "L3 ociwf lifecycle retire" \
    "$ociwf" lifecycle retire --plain-http --key "$work/ociwf.key" --reason "CVE-2026-1234" "$pinned"
  check "L3 ociwf verify of the retired version exits 4, naming the state" exits4 retired \
    "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$pinned"
  check "L3 ociwf status still answers: state: retired" contains "state: retired" \
    "$ociwf" status --plain-http --key "$work/ociwf.pub" "$pinned"
  check "L3 cosign verify-attestation sees the retirement" \
    contains '"state":"retired"' \
    bash -c 'cosign verify-attestation --key "$1" --insecure-ignore-tlog --type "$2" "$3" | { sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | while read -r p; do printf "%s" "$p" | base64 -d; echo; done; }' \
    _ "$work/ociwf.pub" "$event_type" "$pinned"
}

exits4() { # needle command...: the command exits 4, saying needle
  local needle=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc -eq 4 ]] || { printf 'exit %d, want 4:\n%s\n' "$rc" "$out"; return 1; }
  grep -qF -- "$needle" <<<"$out" || { printf 'missing %q in:\n%s\n' "$needle" "$out"; return 1; }
}
