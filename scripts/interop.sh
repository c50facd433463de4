#!/usr/bin/env bash
# Interoperability with the stock tools, both ways: installs pinned cosign
# v2.6.5, cosign v3.1.3 (cosign3), oras, crane and Distribution 3.1.2
# (scripts/tools.sh), and runs every check below against
# `ociwf registry serve` and against stock Distribution 3.1.2 (no
# referrers API: clients keep referrers in the sha256-<hex> fallback tag),
# both on free loopback ports; check 7 runs on ociwf's registry alone. Each
# output line names the registry. It checks that
#   1. stock `cosign verify` (v2 and v3, offline flags only) accepts what
#      `ociwf publish` signed in the default (legacy) format;
#   2. stock `cosign verify-attestation` (v2 and v3) accepts its SLSA v1
#      provenance and CycloneDX SBOM attestations;
#   3. `ociwf verify --policy` accepts a workflow pushed with stock
#      `oras push` and signed and attested (SLSA provenance, CycloneDX SBOM)
#      with stock `cosign sign` / `cosign attest`, under a trust policy that
#      trusts the cosign key; and rejects the wrong key and a non-workflow;
#   4. `cosign tree` lists our signature and attestations, and a
#      `crane copy --all-tags` of the repository keeps them verifiable (by
#      ociwf when told the original repository: signatures name it), as
#      does an `ociwf copy` of the version (stock cosign verifies the copy);
#   5. a key from `ociwf key generate` works in stock cosign, and a key from
#      `cosign generate-key-pair` works in ociwf;
#   6. signatures stored as OCI 1.1 referrers (--referrers) verify with
#      `cosign verify --experimental-oci11` and with ociwf, and an `oras cp
#      -r` of them verifies as the crane copy of 4 does;
#   7. the registry's default rules hold against stock clients: an
#      immutable (semver) tag pushed with `oras push` cannot be overwritten
#      (`oras push`), moved (`oras tag`, `crane tag`) or deleted (`crane
#      delete`, `oras manifest delete`), nor can the manifest it names;
#      each is refused with 403 DENIED and the tag keeps its digest; a
#      second `cosign sign` with another key appends to the append-only
#      .sig tag (both signatures verify) and the .sig tag cannot be moved
#      to a manifest that drops them, nor hold a workflow; `cosign attach
#      sbom` stores an SBOM in the .sbom tag, which holds nothing else; re-pushing the identical manifest
#      (`oras manifest push` of the fetched bytes; `oras tag` and `crane
#      tag` of it, which PUT it again) is idempotent. These are the
#      registry's own rules, so they run on ociwf's registry only;
#   8. an ociwf publication countersigned with stock cosign v3 (a sigstore
#      bundle): cosign v3 then reads only bundles, and cosign v2 needs
#      --trusted-root (an empty trusted root will do) and then verifies the
#      bundles only;
#   B. sigstore bundles written and read by ociwf (scripts/interop-bundles.sh);
#   L. lifecycle events verified by stock cosign (scripts/interop-lifecycle.sh).
# Issue 13's acceptance items map to 1-2 and B1 (item 1), 3 and B2 (item 2),
# 8 and B3 (item 3), 4, 6 and B5 (item 4).
# Any miss fails the script with the failing check named.
#
#   scripts/interop.sh            # both registries, each on a free loopback port
set -euo pipefail
cd "$(dirname "$0")/.."
PATH="$(scripts/tools.sh):$PATH"
work=$(mktemp -d)
source scripts/lib.sh
source scripts/interop-bundles.sh
source scripts/interop-lifecycle.sh
trap 'stop_registry; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
ociwf="$work/ociwf"
export COSIGN_PASSWORD=interop-password COSIGN_YES=true
# The lifecycle state file of every ociwf command (rollback protection)
# lives in the work directory, not the user's.
export XDG_STATE_HOME="$work/state"


checks=0
check() { # name command...
  local name=$1; shift
  if ! out=$("$@" 2>&1); then
    printf 'FAIL %s [%s]\n  %s\n%s\n' "$name" "$on" "$*" "$out" >&2
    exit 1
  fi
  checks=$((checks + 1))
  printf 'ok   %s [%s]\n' "$name" "$on"
}
contains() { # needle command...
  local needle=$1; shift
  local out
  out=$("$@" 2>&1) || { printf '%s\n' "$out"; return 1; }
  grep -qF -- "$needle" <<<"$out" || { printf 'missing %q in:\n%s\n' "$needle" "$out"; return 1; }
}
fails() { # check command...: verification fails with exit 3 naming the check
  local name=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc -eq 3 ]] || { printf 'exit %d, want 3:\n%s\n' "$rc" "$out"; return 1; }
  grep -qF -- "$name check failed" <<<"$out" || { printf 'missing "%s check failed" in:\n%s\n' "$name" "$out"; return 1; }
}
matches() { # regexp command...: the command's output (whatever its exit) matches the extended regexp
  local re=$1; shift
  local out
  out=$("$@" 2>&1) || true
  grep -qE -- "$re" <<<"$out" || { printf 'no match for %q in:\n%s\n' "$re" "$out"; return 1; }
}
rejects() { # needle command...: the command fails, saying needle
  local needle=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc -ne 0 ]] || { printf 'exit 0, want a failure:\n%s\n' "$out"; return 1; }
  grep -qF -- "$needle" <<<"$out" || { printf 'missing %q in:\n%s\n' "$needle" "$out"; return 1; }
}
refused() { # needle command...: the command fails, refused with DENIED naming needle
  local needle=$1; shift
  local out rc=0
  out=$("$@" 2>&1) || rc=$?
  [[ $rc -ne 0 ]] || { printf 'exit 0, want a refusal:\n%s\n' "$out"; return 1; }
  grep -qi -- "denied" <<<"$out" || { printf 'missing "denied" in:\n%s\n' "$out"; return 1; }
  grep -qF -- "$needle" <<<"$out" || { printf 'missing %q in:\n%s\n' "$needle" "$out"; return 1; }
}
resolves() { # ref digest: ref still names digest
  local got
  got=$(oras resolve --plain-http "$1") || return 1
  [[ $got == "$2" ]] || { printf '%s resolves to %s, want %s\n' "$1" "$got" "$2"; return 1; }
}
put_reaches() { # path command...: the command PUTs path and the registry answers 201
  local path=$1; shift
  local before after
  before=$(puts "$path")
  "$@" || return 1
  for _ in $(seq 20); do   # the access log line may trail the response
    after=$(puts "$path")
    [[ $after -gt $before ]] && return 0
    sleep 0.05
  done
  printf 'no PUT %s answered 201 in the registry log\n' "$path"
  return 1
}
puts() { # path: PUTs of path the registry answered 201
  grep -F '"http.request.method":"PUT"' "$log" | grep -F "\"http.request.uri\":\"$1\"" |
    grep -cF '"http.response.status":201' || true
}
statuses() { # command...: the checks of an --output json report, as name=status
  "$@" | tr -d ' \n' | grep -oE '"name":"[a-z]+","status":"[a-z]+"' |
    sed -E 's/"name":"([a-z]+)","status":"([a-z]+)"/\1=\2/' | paste -sd' '
}
# Offline flags of stock cosign v3 (and v2: same names) against a plain-HTTP
# loopback registry: the only flags acceptance allows besides --key.
off=(--insecure-ignore-tlog --allow-http-registry --allow-insecure-registry)
# cosign3 signs and attests offline with --use-signing-config=false
# --tlog-upload=false. cosign v3 prints "Flag --tlog-upload has been
# deprecated, prefer using a --signing-config file with no transparency log
# services" for it; that warning is tolerated (dropped), only the exit
# status counts.
sign3() { # key ref [cosign3 sign flags]: stock cosign v3 signs ref (a bundle)
  local key=$1 ref=$2; shift 2
  cosign3 sign --key "$key" --use-signing-config=false --tlog-upload=false \
    --allow-http-registry --allow-insecure-registry "$@" "$ref" 2>&1 | grep -vF 'Flag --tlog-upload has been deprecated'
  return "${PIPESTATUS[0]}"
}
attest3() { # key type predicate ref: stock cosign v3 attests ref (a bundle)
  cosign3 attest --key "$1" --use-signing-config=false --tlog-upload=false \
    --allow-http-registry --allow-insecure-registry --type "$2" --predicate "$3" "$4" 2>&1 | grep -vF 'Flag --tlog-upload has been deprecated'
  return "${PIPESTATUS[0]}"
}
oras_push_workflow() { # dir ref: stock oras push of a pulled workflow's files as an ociwf workflow manifest
  (cd "$1" && oras push --plain-http --artifact-type application/vnd.ociwf.workflow.v1+json \
    --config config.json:application/vnd.ociwf.workflow.config.v1+json "$2" \
    workflow.yaml:application/vnd.ociwf.workflow.dsl.v1+yaml \
    plan.json:application/vnd.ociwf.workflow.plan.v1+json \
    sbom.cdx.json:application/vnd.cyclonedx+json)
}
copy_checks() { # n repo copy: copy (repository:tag), signed by ociwf's key for repo, verifies with --signed-identity repo only
  check "$1 the copy verifies with ociwf, naming the original repository" \
    "$ociwf" verify --plain-http --key "$work/ociwf.pub" --signed-identity "$2" --require-signed-tag "$3"
  check "$1 ... and without --signed-identity it is a replay across repositories (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$3"
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
cosign3 generate-key-pair --output-key-prefix "$work/security" >/dev/null 2>&1   # a second party's key
# An empty trusted root: all cosign v2 needs to verify keyed bundles offline.
printf '{"mediaType":"application/vnd.dev.sigstore.trustedroot+json;version=0.1"}\n' > "$work/empty_trusted_root.json"


common_checks() { # checks that hold on any registry: items 1-6 and 8
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
  # The same with stock cosign v3, offline flags only: with no bundle stored
  # it falls back to the .sig and .att tags (legacy, ociwf's default format).
  check "1 cosign3 verify accepts ociwf publish" cosign3 verify --key "$work/ociwf.pub" "${off[@]}" "$pinned"
  check "1 cosign3 verify checks the signed tag annotation" \
    cosign3 verify --key "$work/ociwf.pub" "${off[@]}" -a dev.ociwf.tag=1.4.0 "$pinned"
  check "2 cosign3 verify-attestation --type slsaprovenance1" \
    contains '"buildType":"https://ociwf.dev/slsa/workflow-publish/v1"' \
    bash -c 'cosign3 verify-attestation --key "$1" "${@:3}" --type slsaprovenance1 "$2" | sed -E "s/.*\"payload\":\"([^\"]*)\".*/\1/" | base64 -d' _ "$work/ociwf.pub" "$pinned" "${off[@]}"
  check "2 cosign3 verify-attestation --type cyclonedx" \
    cosign3 verify-attestation --key "$work/ociwf.pub" "${off[@]}" --type cyclonedx "$pinned"

  # 3: the layers and config of a published workflow, pushed with stock
  #    `oras push` as an ociwf workflow manifest to a new repository, signed
  #    and attested (SLSA provenance, CycloneDX SBOM) with stock cosign; ociwf
  #    verifies it under a trust policy file that trusts the cosign key.
  check "3 ociwf pull (the layers to re-push)" "$ociwf" pull --plain-http --key "$work/ociwf.pub" "$pinned" -o "$run/stock"
  check "3 oras manifest fetch-config (the config blob)" \
    oras manifest fetch-config --plain-http --output "$run/stock/config.json" "$pinned"
  provenance() { # pub ref out: writes the SLSA provenance predicate attested for ref
    cosign verify-attestation --key "$1" --insecure-ignore-tlog --type slsaprovenance1 "$2" 2>/dev/null |
      sed -E 's/.*"payload":"([^"]*)".*/\1/' | base64 -d |
      sed -E 's/.*"predicate":(\{.*\})\}$/\1/' > "$3"   # the statement's last field
    grep -q '^{"buildDefinition"' "$3"
  }
  check "3 the published provenance predicate" provenance "$work/ociwf.pub" "$pinned" "$run/provenance.json"
  check "3 oras push as an ociwf workflow manifest" oras_push_workflow "$run/stock" "$reg/stock/workflow:1.4.0"
  stock="$reg/stock/workflow@$(oras resolve --plain-http "$reg/stock/workflow:1.4.0")"
  check "3 cosign sign" cosign sign --key "$work/cosign.key" --tlog-upload=false "$stock"
  check "3 cosign attest --type slsaprovenance1" \
    cosign attest --key "$work/cosign.key" --tlog-upload=false --type slsaprovenance1 --predicate "$run/provenance.json" "$stock"
  check "3 cosign attest --type cyclonedx" \
    cosign attest --key "$work/cosign.key" --tlog-upload=false --type cyclonedx --predicate "$run/stock/sbom.cdx.json" "$stock"
  cat > "$run/policy.yaml" <<EOF
  version: ociwf.dev/trust/v1
  trustPolicies:
    - name: stock
      registryScopes: [$reg/stock/workflow]
      signers:
        - {name: cosign, key: ../cosign.pub}   # relative to this file
      require:
        attestations: [slsaprovenance1, cyclonedx]
EOF
  check "3 ociwf verify --policy accepts oras push + cosign sign + cosign attest" \
    "$ociwf" verify --plain-http --policy "$run/policy.yaml" "$stock"
  check "3 ... every check passes, lifecycle too (published by its signature: no events)" \
    contains "reference=pass manifest=pass blobs=pass signatures=pass attestations=pass sbom=pass reproducibility=pass lifecycle=pass" \
    statuses "$ociwf" verify --plain-http --policy "$run/policy.yaml" --output json "$stock"
  check "3 ociwf verify rejects the wrong key (exit 3, signatures)" \
    fails signatures "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$stock"
  printf 'name: plain\n' > "$run/plain.txt"
  check "3 oras push of a plain file" bash -c 'cd "$1" && oras push --plain-http "$2" plain.txt' _ "$run" "$reg/stock/plain:v1"
  plain="$reg/stock/plain@$(oras resolve --plain-http "$reg/stock/plain:v1")"
  check "3 cosign sign of the plain file" cosign sign --key "$work/cosign.key" --tlog-upload=false "$plain"
  check "3 ociwf verify rejects a signed non-workflow (exit 3, manifest)" \
    fails manifest "$ociwf" verify --plain-http --key "$work/cosign.pub" --signature-only "$plain"

  # 4: cosign tree; crane copy keeps everything verifiable.
  check "4 cosign tree lists the signature" contains "Signatures for an image tag" cosign tree "$pinned"
  check "4 cosign tree lists the attestations" contains "Attestations for an image tag" cosign tree "$pinned"
  check "4 crane copy --all-tags of the repository" crane copy --all-tags "$reg/workflows/release" "$reg/mirror/release"
  copied="$reg/mirror/release@${pinned#*@}"
  check "4 the copy verifies with stock cosign" verify_all "$work/ociwf.pub" "$copied"
  copy_checks 4 "$reg/workflows/release" "$reg/mirror/release:1.4.0"
  check "4 ociwf copy of the version (verified at the copy, naming the original repository)" \
    "$ociwf" copy --plain-http --key "$work/ociwf.pub" --signed-identity "$reg/workflows/release" \
    "$reg/workflows/release:1.4.0" "$reg/ociwf-mirror/release"
  check "4 ... and stock cosign verifies the ociwf copy" verify_all "$work/ociwf.pub" "$reg/ociwf-mirror/release@${pinned#*@}"

  # 5: keys across tools.
  check "5 stock cosign signs with an ociwf key" cosign sign --key "$work/ociwf.key" --tlog-upload=false "$stock"
  check "5 ... and ociwf verifies it" "$ociwf" verify --plain-http --key "$work/ociwf.pub" --signature-only "$stock"
  other=$("$ociwf" publish --plain-http --offline --key "$work/cosign.key" testdata/workflows/fan-out-fan-in.yaml "$reg/workflows/fan:1.0.0" | tail -n1)
  check "5 ociwf publishes with a cosign key; stock cosign verifies" verify_all "$work/cosign.pub" "$other"

  # 6: OCI 1.1 referrers.
  ref=$("$ociwf" publish --plain-http --offline --referrers --key "$work/ociwf.key" testdata/workflows/fan-out-fan-in.yaml "$reg/referrers/fan:1.0.0" 2>/dev/null | tail -n1)
  check "6 cosign verify --experimental-oci11 finds the referrer signature" \
    cosign verify --experimental-oci11 --key "$work/ociwf.pub" --insecure-ignore-tlog "$ref"
  check "6 ociwf verify finds referrer signature and attestations" \
    "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$ref"
  check "6 oras discover lists the referrers" contains "application/vnd.dev.cosign.artifact.sig.v1+json" oras discover --plain-http "$ref"
  check "6 oras cp -r of the workflow and its referrers to another repository" \
    oras cp -r --from-plain-http --to-plain-http "$ref" "$reg/mirror/fan:1.0.0"
  copy_checks 6 "$reg/referrers/fan" "$reg/mirror/fan:1.0.0"

  # 8: mixed formats as they meet today: ociwf publishes (legacy), a second
  #    party countersigns with stock cosign v3, which stores a sigstore
  #    bundle as a referrer. From then on cosign v3 verifies only bundles
  #    (ociwf's key again with --new-bundle-format=false), and cosign v2
  #    fails offline for every key, "trusted root is required when using new
  #    bundle format", until it is given --trusted-root (an empty trusted
  #    root does for keys); it then verifies the bundles only, and has no
  #    switch back to the legacy signatures of that digest.
  mixed=$("$ociwf" publish --plain-http --offline --key "$work/ociwf.key" \
    testdata/workflows/build-test-release.yaml "$reg/mixed/release:1.4.0" | tail -n1)
  check "8 cosign3 sign countersigns ociwf's publish (a bundle)" sign3 "$work/security.key" "$mixed"
  check "8 oras discover lists the bundle" contains "application/vnd.dev.sigstore.bundle.v0.3+json" oras discover --plain-http "$mixed"
  check "8 cosign3 verify with the countersigner's key" cosign3 verify --key "$work/security.pub" "${off[@]}" "$mixed"
  check "8 cosign3 verify with ociwf's key fails: cosign v3 reads only the bundles now" \
    rejects "accepted signatures do not match threshold" cosign3 verify --key "$work/ociwf.pub" "${off[@]}" "$mixed"
  check "8 ... and passes with --new-bundle-format=false" \
    cosign3 verify --key "$work/ociwf.pub" "${off[@]}" --new-bundle-format=false "$mixed"
  check "8 cosign v2 verify fails offline once a bundle exists (countersigner's key)" \
    rejects "trusted root is required when using new bundle format" cosign verify --key "$work/security.pub" "${off[@]}" "$mixed"
  check "8 ... and for ociwf's key" \
    rejects "trusted root is required when using new bundle format" cosign verify --key "$work/ociwf.pub" "${off[@]}" "$mixed"
  check "8 cosign v2 verify --trusted-root (empty) verifies the countersigner" \
    cosign verify --key "$work/security.pub" "${off[@]}" --trusted-root "$work/empty_trusted_root.json" "$mixed"
  check "8 ... but not ociwf's legacy signature (bundles only)" \
    rejects "no matching attestations" cosign verify --key "$work/ociwf.pub" "${off[@]}" --trusted-root "$work/empty_trusted_root.json" "$mixed"
  check "8 ociwf verify still verifies ociwf's signature" \
    "$ociwf" verify --plain-http --key "$work/ociwf.pub" "$mixed"

  # The checks that need ociwf to read and write sigstore bundles
  # (scripts/interop-bundles.sh; they skip while ociwf has no
  # --signature-format).
  bundle_checks
  lifecycle_checks

}

ociwf_checks() { # checks of ociwf registry serve alone: its immutability rules (7)
  # 7: the default rules against stock clients. 1.0.0 is a semantic-version
  #    tag, so immutable; "draft" is mutable; sha256-<hex>.sig is append-only.
  mkdir -p "$work/protected"
  printf 'name: protected\nversion: 1\n' > "$work/protected/one.yaml"
  printf 'name: protected\nversion: 2\n' > "$work/protected/two.yaml"
  push_file() { # file ref: oras push of one file from $work/protected
    (cd "$work/protected" && oras push --plain-http "$2" "$1")
  }
  prot="$reg/protected/wf"
  check "7 oras push to an immutable tag" push_file one.yaml "$prot:1.0.0"
  orig=$(oras resolve --plain-http "$prot:1.0.0")
  check "7 oras push of different content to it is refused (DENIED, immutable)" \
    refused "tag 1.0.0 of protected/wf is immutable" push_file two.yaml "$prot:1.0.0"
  check "7 oras push of another manifest to a mutable tag" push_file two.yaml "$prot:draft"
  draft=$(oras resolve --plain-http "$prot:draft")
  check "7 oras tag of another manifest onto the immutable tag is refused" \
    refused "tag 1.0.0 of protected/wf is immutable" oras tag --plain-http "$prot:draft" 1.0.0
  check "7 crane tag onto the immutable tag is refused" \
    refused "tag 1.0.0 of protected/wf is immutable" crane tag "$prot:draft" 1.0.0
  check "7 crane delete of the manifest by digest is refused" \
    refused "manifest $orig of protected/wf is protected: tag 1.0.0" crane delete "$prot@$orig"
  check "7 oras manifest delete of the tag is refused" \
    refused "manifest $orig of protected/wf is protected: tag 1.0.0" oras manifest delete --plain-http --force "$prot:1.0.0"
  check "7 crane delete of the tag is refused" \
    refused "tag 1.0.0 of protected/wf is immutable (rule semver) and cannot be deleted" crane delete "$prot:1.0.0"
  check "7 the tag still names the original digest" resolves "$prot:1.0.0" "$orig"
  check "7 cosign sign of the protected manifest (ociwf key)" \
    cosign sign --key "$work/ociwf.key" --tlog-upload=false "$prot@$orig"
  check "7 cosign sign adds a second signature (cosign key) to the append-only .sig tag" \
    cosign sign --key "$work/cosign.key" --tlog-upload=false "$prot@$orig"
  check "7 cosign verify with the ociwf key" cosign verify --key "$work/ociwf.pub" --insecure-ignore-tlog "$prot@$orig"
  check "7 cosign verify with the cosign key" cosign verify --key "$work/cosign.pub" --insecure-ignore-tlog "$prot@$orig"
  sig="sha256-${orig#sha256:}.sig"
  check "7 crane tag of a workflow onto the .sig tag is refused (reserved for signatures)" \
    refused "tag $sig of protected/wf is reserved for cosign's signatures of $orig" crane tag "$prot:draft" "$sig"
  check "7 cosign sign of the mutable manifest" \
    cosign sign --key "$work/cosign.key" --tlog-upload=false "$prot@$draft"
  check "7 crane tag of its signatures, dropping the others, onto the .sig tag is refused (append-only)" \
    refused "tag $sig of protected/wf is append-only" crane tag "$prot:sha256-${draft#sha256:}.sig" "$sig"
  printf '{"spdxVersion":"SPDX-2.3","SPDXID":"SPDXRef-DOCUMENT","name":"protected","dataLicense":"CC0-1.0"}\n' > "$work/protected/sbom.spdx.json"
  check "7 cosign attach sbom stores an SBOM in the .sbom tag" \
    cosign attach sbom --sbom "$work/protected/sbom.spdx.json" --type spdx "$prot@$orig"
  check "7 crane tag of a workflow onto the .sbom tag is refused (reserved for SBOMs)" \
    refused "is reserved for cosign's SBOMs of $orig" crane tag "$prot:draft" "sha256-${orig#sha256:}.sbom"
  check "7 ... and both signatures still verify" \
    bash -c 'cosign verify --key "$1" --insecure-ignore-tlog "$3" && cosign verify --key "$2" --insecure-ignore-tlog "$3"' \
    _ "$work/ociwf.pub" "$work/cosign.pub" "$prot@$orig"
  check "7 oras manifest fetch of the immutable tag" \
    bash -c 'oras manifest fetch --plain-http "$1" > "$2"' _ "$prot:1.0.0" "$work/protected/manifest.json"
  check "7 oras manifest push of the identical manifest to it succeeds" \
    oras manifest push --plain-http "$prot:1.0.0" "$work/protected/manifest.json"
  # oras sees the tag already names that digest and skips the PUT; oras tag
  # and crane tag of the same manifest PUT its bytes, so the registry's
  # idempotent path answers.
  check "7 oras tag of the same manifest onto the immutable tag is idempotent (PUT 201)" \
    put_reaches /v2/protected/wf/manifests/1.0.0 oras tag --plain-http "$prot@$orig" 1.0.0
  check "7 crane tag of the same manifest onto the immutable tag is idempotent (PUT 201)" \
    put_reaches /v2/protected/wf/manifests/1.0.0 crane tag "$prot@$orig" 1.0.0
  check "7 after all that the tag still names the original digest" resolves "$prot:1.0.0" "$orig"
  check "7 ... and the mutable tag its own" resolves "$prot:draft" "$draft"

}
# Every check but 7 runs against both registries; each line names the one
# it ran on.
on="ociwf registry serve"
run="$work/ociwf-served"; mkdir -p "$run"
log="$work/registry.log"
start_registry "$ociwf" 127.0.0.1:0 "$run/root" "$log"
common_checks
ociwf_checks
stop_registry

on="distribution 3.1.2"
run="$work/distribution"; mkdir -p "$run"
log="$work/distribution.log"
start_stock_registry "$(command -v registry)" "$run/root" "$log"
common_checks
stop_registry

printf '\ninterop ok: %d checks\n' "$checks"
