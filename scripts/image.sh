#!/usr/bin/env bash
# Builds the container image of ociwf-registry (the registry extension)
# with ko, without a container daemon, into an OCI image layout directory:
# DIR/index.json, DIR/oci-layout, DIR/blobs/sha256/... Push it with any
# OCI client, e.g. `crane push DIR REGISTRY/ociwf-registry:TAG` or
# `oras cp --from-oci-layout DIR@sha256:... REGISTRY/ociwf-registry:TAG`.
#
#   scripts/image.sh [DIR]                     # default ./ociwf-registry-image
#   BASE_IMAGE=registry.example.com/static@sha256:... PLATFORMS=linux/amd64 scripts/image.sh out/
#
# The image: the statically linked ociwf-registry (CGO_ENABLED=0,
# -trimpath) as /ko-app/ociwf-registry, its entrypoint; user 65532:65532;
# created at SOURCE_DATE_EPOCH (default the epoch), so a rebuild of the
# same commit on the same base gives the same digest. BASE_IMAGE defaults
# to ko's own default, cgr.dev/chainguard/static (CA certificates, tzdata,
# a nonroot user): pin it by digest for releases. PLATFORMS defaults to
# linux/amd64,linux/arm64 (an image index); the base must have them.
# Installs the pinned ko with scripts/tools.sh. Prints the digest of what
# index.json names (the index, or the image for one platform).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-ociwf-registry-image}
if [[ -e $out && -n "$(ls -A "$out" 2>/dev/null)" ]]; then
  echo "image.sh: $out exists and is not empty; remove it or name another directory" >&2
  exit 2
fi
PATH="$(scripts/tools.sh ko):$PATH"
# ko takes the layout path for a repository name: lower case, relative.
tmp=.image-build-$$
rm -rf "$tmp"
mkdir "$tmp"
trap 'rm -rf "$tmp"' EXIT

env=(KO_DOCKER_REPO=ociwf.dev/ociwf-registry)   # names the image; nothing is pushed
[[ -n ${BASE_IMAGE:-} ]] && env+=(KO_DEFAULTBASEIMAGE="$BASE_IMAGE")
env "${env[@]}" CGO_ENABLED=0 ko build --bare --push=false --sbom none \
  --oci-layout-path "$tmp/layout" \
  --platform "${PLATFORMS:-linux/amd64,linux/arm64}" \
  --image-user 65532:65532 \
  --image-label org.opencontainers.image.title=ociwf-registry \
  ./cmd/ociwf-registry >"$tmp/ref" 2>"$tmp/log" || { cat "$tmp/log" >&2; exit 1; }

mkdir -p "$(dirname "$out")"
rm -rf "$out"
mv "$tmp/layout" "$out"
jq -r '.manifests[0].digest' "$out/index.json"
