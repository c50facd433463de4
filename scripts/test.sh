#!/usr/bin/env bash
# The test command: installs the pinned stock tools (scripts/tools.sh:
# oras, cosign, crane), vets and runs every test against real loopback
# registries, then checks interoperability with the stock tools both ways
# (scripts/interop.sh) and runs the OCI distribution-spec conformance suite
# against `ociwf registry serve` (scripts/conformance.sh). CI runs exactly
# this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh):$PATH"
go vet ./...
go test -count=1 ./...
scripts/interop.sh
scripts/conformance.sh
