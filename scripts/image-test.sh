#!/usr/bin/env bash
# Builds the ociwf-registry image with scripts/image.sh (ko, installed
# pinned by scripts/tools.sh ko) on an empty base served by a loopback
# registry, and checks it: the layout read back from index.json with every
# blob's size and digest checked, the layers against the config's diff IDs,
# the entrypoint and the non-root user, and the binary it holds run. Not
# part of scripts/test.sh: on a cold machine the image's own compile of the
# registry takes minutes.
#
#   scripts/image-test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh ko):$PATH"
started=$(date +%s)
OCIWF_IMAGE_TEST=1 go test -count=1 -v -run '^(TestImage|TestReadLayout)$' ./cmd/ociwf-registry
echo "image test ok in $(($(date +%s) - started)) s"
