#!/usr/bin/env bash
# Interoperability with the stock tools, both ways: installs pinned cosign,
# oras and crane (scripts/tools.sh), starts `ociwf registry serve` on
# loopback and checks that
#   1. stock `cosign verify` accepts what `ociwf publish` signed;
#   2. stock `cosign verify-attestation` accepts its SLSA v1 provenance and
#      CycloneDX SBOM attestations;
#   3. `ociwf verify` accepts an artifact pushed with stock `oras push` and
#      signed and attested with stock `cosign sign` / `cosign attest`;
#   4. `cosign tree` lists our signature and attestations, and a
#      `crane copy --all-tags` of the repository keeps them verifiable;
#   5. a key from `ociwf key generate` works in stock cosign, and a key from
#      `cosign generate-key-pair` works in ociwf;
#   6. signatures stored as OCI 1.1 referrers (--referrers) verify with
#      `cosign verify --experimental-oci11` and with ociwf.
# Any miss fails the script with the failing check named.
#
#   scripts/interop.sh            # registry on a free loopback port
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/tools.sh):$PATH"
work=$(mktemp -d)
source scripts/lib.sh
trap 'stop_registry; rm -rf "$work"' EXIT
go build -o "$work/ociwf" ./cmd/ociwf
ociwf="$work/ociwf"
export COSIGN_PASSWORD=interop-password COSIGN_YES=true

start_registry "$ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"

checks=0
check() { # name command...
  local name=$1; shift
  if ! out=$("$@" 2>&1); then
    printf 'FAIL %s\n  %s\n%s\n' "$name" "$*" "$out" >&2
    exit 1
  fi
  checks=$((checks + 1))
  printf 'ok   %s\n' "$name"
}
contains() { # needle command...
  local needle=$1; shift
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
  grep -qF -- "$needle" <<<"$out" || { printf 'missing %q in:\n%s\n' "$needle" "$out"; return 1; }
}
verify_all() { # pub ref [cosign flags]
  local pub=$1 ref=$2; shift 2
  cosign verify --key "$pub" --insecure-ignore-tlog "$@" "$ref" >/dev/null &&
    cosign verify-attestation --key "$pub" --insecure-ignore-tlog --type slsaprovenance1 "$@" "$ref" >/dev/null &&
    cosign verify-attestation --key "$pub" --insecure-ignore-tlog --type cyclonedx "$@" "$ref" >/dev/null
}

# Keys from both tools.
"$ociwf" key generate --output-key-prefix "$work/ociwf" >/dev/null
(cd "$work" && cosign generate-key-pair >/dev/null 2>&1)   # writes cosign.key, cosign.pub

# 1, 2: ociwf publishes with its own key; stock cosign verifies.
pinned=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" \
  --source-uri git+https://example.com/acme/workflows --source-revision 0123456789abcdef0123456789abcdef01234567 \
  testdata/workflows/build-test-release.yaml "$reg/workflows/release:1.4.0" | tail -n1)
check "1 cosign verify accepts ociwf publish" cosign verify --key "$work/ociwf.pub" --insecure-ignore-tlog "$pinned"
check "1 cosign verify checks the signed tag annotation" cosign verify --key "$work/ociwf.pub" --insecure-ignore-tlog -a dev.ociwf.tag=1.4.0 "$pinned"
check "2 cosign verify-attestation --type slsaprovenance1" \
  contains '"buildType":"https://ociwf.dev/slsa/workflow-publish/v1"' \
  bash -c 'cosign verify-attestation --key "$1" --insecure-ignore-tlog --type slsaprovenance1 "$2" | sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | base64 -d' _ "$work/ociwf.pub" "$pinned"
check "2 cosign verify-attestation --type cyclonedx" cosign verify-attestation --key "$work/ociwf.pub" --insecure-ignore-tlog --type cyclonedx "$pinned"

# 3: stock oras push + cosign sign + cosign attest; ociwf verifies.
printf 'name: plain\n' > "$work/plain.txt"
check "3 oras push" bash -c 'cd "$1" && oras push --plain-http "$2" plain.txt' _ "$work" "$reg/stock/plain:v1"
stock="$reg/stock/plain@$(oras resolve --plain-http "$reg/stock/plain:v1")"
check "3 cosign sign" cosign sign --key "$work/cosign.key" --tlog-upload=false "$stock"
check "3 ociwf pull (for an SBOM to attest)" "$ociwf" pull --plain-http "$pinned" -o "$work/pulled"
check "3 cosign attest" cosign attest --key "$work/cosign.key" --tlog-upload=false --type cyclonedx --predicate "$work/pulled/sbom.cdx.json" "$stock"
check "3 ociwf verify accepts oras push + cosign sign + cosign attest" \
  "$ociwf" verify --plain-http --key "$work/cosign.pub" --type cyclonedx "$stock"
check "3 ociwf verify rejects the wrong key (exit 3)" \
  bash -c '"$1" verify --plain-http --key "$2" "$3"; [[ $? -eq 3 ]]' _ "$ociwf" "$work/ociwf.pub" "$stock"

# 4: cosign tree; crane copy keeps everything verifiable.
check "4 cosign tree lists the signature" contains "Signatures for an image tag" cosign tree "$pinned"
check "4 cosign tree lists the attestations" contains "Attestations for an image tag" cosign tree "$pinned"
check "4 crane copy --all-tags of the repository" crane copy --all-tags "$reg/workflows/release" "$reg/mirror/release"
copied="$reg/mirror/release@${pinned#*@}"
check "4 the copy verifies with stock cosign" verify_all "$work/ociwf.pub" "$copied"
check "4 the copy verifies with ociwf" \
  "$ociwf" verify --plain-http --key "$work/ociwf.pub" --type slsaprovenance1 --type cyclonedx --require-signed-tag "$reg/mirror/release:1.4.0"

# 5: keys across tools.
check "5 stock cosign signs with an ociwf key" cosign sign --key "$work/ociwf.key" --tlog-upload=false "$stock"
check "5 ... and ociwf verifies it" "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$stock"
other=$("$ociwf" publish --plain-http --offline --key "$work/cosign.key" testdata/workflows/fan-out-fan-in.yaml "$reg/workflows/fan:1.0.0" | tail -n1)
check "5 ociwf publishes with a cosign key; stock cosign verifies" verify_all "$work/cosign.pub" "$other"

# 6: OCI 1.1 referrers.
ref=$("$ociwf" publish --plain-http --offline --referrers --key "$work/ociwf.key" testdata/workflows/fan-out-fan-in.yaml "$reg/referrers/fan:1.0.0" 2>/dev/null | tail -n1)
check "6 cosign verify --experimental-oci11 finds the referrer signature" \
  cosign verify --experimental-oci11 --key "$work/ociwf.pub" --insecure-ignore-tlog "$ref"
check "6 ociwf verify finds referrer signature and attestations" \
  "$ociwf" verify --plain-http --key "$work/ociwf.pub" --type slsaprovenance1 --type cyclonedx "$ref"
check "6 oras discover lists the referrers" contains "application/vnd.dev.cosign.artifact.sig.v1+json" oras discover --plain-http "$ref"

printf '\ninterop ok: %d checks\n' "$checks"
