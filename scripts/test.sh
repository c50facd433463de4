#!/usr/bin/env bash
# The test command: installs the pinned stock tools the interop tests use
# (scripts/tools.sh), then vets and runs every test against real loopback
# registries. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh):$PATH"
go vet ./...
go test -count=1 ./...
