#!/usr/bin/env bash
# Publishes an ociwf workflow artifact with stock oras and cosign only, for
# pipelines that cannot install ociwf: the manifest ociwf expects
# (docs/artifact-format.md), pushed by digest; a cosign signature; SLSA v1
# provenance and CycloneDX SBOM attestations; the write-once tag last.
#
#   docs/recipes/oras-cosign.sh DIR REGISTRY/REPOSITORY:TAG KEY
#
# DIR holds workflow.yaml, plan.json and sbom.cdx.json, as ociwf's
# compiler wrote them (docs/recipes/oras-cosign.md says where that runs:
# nothing else writes a plan ociwf's verifier accepts). TAG must be the
# workflow's metadata.version. KEY is a cosign private key file (password
# in COSIGN_PASSWORD) or a KMS URI cosign can use.
#
# Environment (all optional):
#   PLAIN_HTTP       true talks plain HTTP to the registry (loopback)
#   REGISTRY_CONFIG  a Docker config.json with the registry's credentials
#                    (default: oras's and cosign's usual credential store)
#   COSIGN_FLAGS     extra flags for every cosign sign/attest
#   TLOG_UPLOAD      true records signatures in Rekor (cosign's
#                    --tlog-upload); default false, as ociwf with a key
#   BUILDER_ID       provenance runDetails.builder.id
#   SOURCE_URI, SOURCE_REVISION, WORKFLOW_PATH
#                    provenance externalParameters.source and .workflow.path
#
# Needs oras (1.2 or later), cosign (v2), jq and sha256sum. Prints the
# pinned REGISTRY/REPOSITORY@sha256:... last. Exits 4, before writing
# anything, if TAG already names other content; a rerun of a completed
# publication pushes nothing new (cosign appends one more signature).
set -euo pipefail

if [[ $# -ne 3 ]]; then
  sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
  exit 2
fi
dir=$1 ref=$2 key=$3
repo=${ref%:*} tag=${ref##*:}
if [[ $repo == "$ref" || $repo == *@* || -z $tag || $tag == */* ]]; then
  echo "oras-cosign.sh: $ref: want REGISTRY/REPOSITORY:TAG" >&2
  exit 2
fi
for f in workflow.yaml plan.json sbom.cdx.json; do
  [[ -f $dir/$f ]] || { echo "oras-cosign.sh: $dir/$f is missing (ociwf's compiler writes it)" >&2; exit 2; }
done
for t in oras cosign jq sha256sum; do
  command -v "$t" >/dev/null || { echo "oras-cosign.sh: $t is not on PATH" >&2; exit 1; }
done
oras_flags=() cp_flags=()
if [[ ${PLAIN_HTTP:-false} == true ]]; then oras_flags+=(--plain-http) cp_flags+=(--to-plain-http); fi
if [[ -n ${REGISTRY_CONFIG:-} ]]; then
  oras_flags+=(--registry-config "$REGISTRY_CONFIG") cp_flags+=(--to-registry-config "$REGISTRY_CONFIG")
  export DOCKER_CONFIG=${REGISTRY_CONFIG%/*}   # cosign reads DOCKER_CONFIG/config.json
fi
read -r -a cosign_flags <<<"${COSIGN_FLAGS:-}"
tlog=${TLOG_UPLOAD:-false}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp "$dir/workflow.yaml" "$dir/plan.json" "$dir/sbom.cdx.json" "$work/"
sha() { echo "sha256:$(sha256sum "$1" | cut -d' ' -f1)"; }

name=$(jq -r .workflow.name "$work/plan.json")
version=$(jq -r .workflow.version "$work/plan.json")
description=$(jq -r '.workflow.description // ""' "$work/plan.json")
if [[ $tag != "$version" ]]; then
  echo "oras-cosign.sh: tag $tag is not the workflow's metadata.version $version" >&2
  exit 2
fi
if [[ $(jq -r .source.digest "$work/plan.json") != "$(sha "$work/workflow.yaml")" ]]; then
  echo "oras-cosign.sh: plan.json was not compiled from this workflow.yaml" >&2
  exit 2
fi

# The config blob: ociwf's summary of the plan (name, version, description,
# params, step count, plan digest), keys sorted, no spaces.
jq -cS --arg plan "$(sha "$work/plan.json")" '{
    name: .workflow.name, version: .workflow.version, steps: (.steps | length), planDigest: $plan}
  + (if (.workflow.description // "") != "" then {description: .workflow.description} else {} end)
  + (if (.params // []) != [] then {params: [.params[] | {name, type} + (if .required then {required: true} else {} end)]} else {} end)' \
  "$work/plan.json" | tr -d '\n' >"$work/config.json"

# The write-once check before anything is written.
if current=$(oras resolve "${oras_flags[@]}" "$ref" 2>/dev/null); then
  existing=$current
else
  existing=
fi

# Push by digest: the manifest is built in a local OCI layout (no tag in
# the registry yet), then copied by digest. created is fixed, as ociwf's.
annotations=(
  -a "org.opencontainers.image.created=1970-01-01T00:00:00Z"
  -a "org.opencontainers.image.title=$name"
  -a "org.opencontainers.image.version=$version"
)
[[ -n $description ]] && annotations+=(-a "org.opencontainers.image.description=$description")
[[ -n ${SOURCE_URI:-} ]] && annotations+=(-a "org.opencontainers.image.source=${SOURCE_URI#git+}")
[[ -n ${SOURCE_REVISION:-} ]] && annotations+=(-a "org.opencontainers.image.revision=$SOURCE_REVISION")
digest=$(cd "$work" && oras push --oci-layout --format go-template='{{.digest}}' \
  --artifact-type application/vnd.ociwf.workflow.v1+json \
  --config config.json:application/vnd.ociwf.workflow.config.v1+json \
  "${annotations[@]}" "layout:$tag" \
  workflow.yaml:application/vnd.ociwf.workflow.dsl.v1+yaml \
  plan.json:application/vnd.ociwf.workflow.plan.v1+json \
  sbom.cdx.json:application/vnd.cyclonedx+json)
if [[ -n $existing && $existing != "$digest" ]]; then
  echo "oras-cosign.sh: tag $tag of $repo already names $existing, not $digest; push under a new version" >&2
  exit 4
fi
pinned=$repo@$digest
oras cp "${cp_flags[@]}" --from-oci-layout "$work/layout@$digest" "$pinned" >/dev/null

# SLSA v1 provenance: ociwf's verifier requires the DSL layer and every
# pinned dependency of the plan among resolvedDependencies.
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
jq -c --arg src "$(sha "$work/workflow.yaml")" --arg builder "${BUILDER_ID:-https://ociwf.dev/recipes/oras-cosign}" \
  --arg uri "${SOURCE_URI:-}" --arg rev "${SOURCE_REVISION:-}" --arg path "${WORKFLOW_PATH:-workflow.yaml}" --arg now "$now" '{
  buildDefinition: {
    buildType: "https://ociwf.dev/slsa/oras-cosign/v1",
    externalParameters: ({workflow: {path: $path, name: .workflow.name, version: .workflow.version}}
      + (if $uri != "" then {source: ({uri: $uri} + (if $rev != "" then {revision: $rev} else {} end))} else {} end)),
    resolvedDependencies: ([{uri: $path, digest: {sha256: ($src | ltrimstr("sha256:"))}, annotations: {kind: "source"}}]
      + [(.dependencies // [])[] | {uri: ("oci://" + .pinned), digest: {sha256: (.digest | ltrimstr("sha256:"))}, annotations: {kind: .kind, ref: .ref}}])
  },
  runDetails: {builder: {id: $builder}, metadata: {startedOn: $now, finishedOn: $now}}
}' "$work/plan.json" >"$work/provenance.json"

cosign sign --yes --key "$key" --tlog-upload="$tlog" -a "dev.ociwf.tag=$tag" "${cosign_flags[@]}" "$pinned" >/dev/null 2>"$work/cosign.log" ||
  { cat "$work/cosign.log" >&2; exit 1; }
cosign attest --yes --key "$key" --tlog-upload="$tlog" --type slsaprovenance1 --predicate "$work/provenance.json" "${cosign_flags[@]}" "$pinned" >/dev/null 2>"$work/cosign.log" ||
  { cat "$work/cosign.log" >&2; exit 1; }
cosign attest --yes --key "$key" --tlog-upload="$tlog" --type cyclonedx --predicate "$work/sbom.cdx.json" "${cosign_flags[@]}" "$pinned" >/dev/null 2>"$work/cosign.log" ||
  { cat "$work/cosign.log" >&2; exit 1; }

# The tag last, so no tag ever names a half-published version.
[[ $existing == "$digest" ]] || oras tag "${oras_flags[@]}" "$pinned" "$tag" >/dev/null
echo "$pinned"
