#!/usr/bin/env bash
# The test command: installs the pinned stock tools (scripts/tools.sh:
# oras, cosign, crane, stock Distribution, the gofakes3 S3 server, ko for the
# image test) and the services the tests start (scripts/services.sh:
# headless Chromium, redis-server, graphviz, systemd-analyze), vets, runs staticcheck and every test
# against real loopback registries, the packages that start goroutines again
# under the race detector, the README's quickstart, the fault matrix (scripts/faults.sh), then checks
# interoperability with the stock tools both ways (scripts/interop.sh) and runs the OCI distribution-spec conformance suite
# against `ociwf registry serve` (scripts/conformance.sh). CI runs exactly
# this.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(scripts/tools.sh):$PATH"
scripts/services.sh                 # chromium and redis-server, from Debian's packages
export OCIWF_REQUIRE_SERVICES=1     # tests needing them fail rather than skip
# The CLI's own goroutines: the registry server (ociwf-registry, and ociwf
# handing over to it) and the long-running monitor.
RACE_CMD_TESTS='^(TestRegistryServe.*|TestMonitor.*)$'
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...   # pinned; from the Go module proxy
go test -count=1 ./...
# The packages that start goroutines, under the race detector.
go test -race -count=1 ./attest/... ./ociwf/... ./policy/...
go test -race -count=1 ./cmd/ociwf -run "$RACE_CMD_TESTS"
go test -race -count=1 ./cmd/ociwf-registry
PORT=0 scripts/quickstart.sh        # the README's quickstart, on a free port
scripts/faults.sh
scripts/interop.sh
scripts/conformance.sh
