#!/usr/bin/env bash
# Runs the benchmarks behind the figures in issues and notes: compile of a
# generated 1,000- and 10,000-step DAG, push+pull of one workflow against a
# loopback registry, and `ociwf publish` against the stock oras + cosign
# pipeline (scripts/bench-publish.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./ociwf/plan -run '^$' -bench 'Compile' -benchmem -count "${COUNT:-3}"
go test ./ociwf -run '^$' -bench 'PushPull' -benchmem -count "${COUNT:-3}"
scripts/bench-publish.sh
