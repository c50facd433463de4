#!/usr/bin/env bash
# The test command: installs the pinned stock tools (scripts/tools.sh:
# oras, cosign, crane) and the services the tests start (scripts/services.sh:
# headless Chromium, redis-server), vets, runs staticcheck and every test against real loopback
# registries, then checks interoperability with the stock tools both ways
# (scripts/interop.sh) and runs the OCI distribution-spec conformance suite
# against `ociwf registry serve` (scripts/conformance.sh). CI runs exactly
# this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh):$PATH"
scripts/services.sh                 # chromium and redis-server, from Debian's packages
export OCIWF_REQUIRE_SERVICES=1     # tests needing them fail rather than skip
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...   # pinned; from the Go module proxy
go test -count=1 ./...
scripts/interop.sh
scripts/conformance.sh
