#!/usr/bin/env bash
# Runs the benchmarks behind the figures in issues and notes: compile of
# generated 100- to 20,000-step DAGs, push+pull of one workflow against a
# loopback registry, one verify and verify-all over VERSIONS (default
# 1,000) versions in process (registry in the same process), `ociwf publish`
# against the stock oras + cosign pipeline (scripts/bench-publish.sh), and
# `ociwf verify` against stock cosign + oras, plus `ociwf verify --all`
# throughput and peak RSS (scripts/bench-verify.sh), and manifest PUT/GET
# latency through ociwf's registry against plain Distribution
# (scripts/bench-registry.sh). All three scripts run even if one misses its
# target; the exit status is 1 if any did.
set -euo pipefail
cd "$(dirname "$0")/.."
go test ./ociwf/plan -run '^$' -bench 'Compile' -benchmem -count "${COUNT:-3}"
go test ./ociwf -run '^$' -bench 'PushPull' -benchmem -count "${COUNT:-3}"
go test ./attest/verify -run '^$' -bench '^BenchmarkVerify$' -benchmem -count "${COUNT:-3}"
OCIWF_BENCH_VERSIONS="${VERSIONS:-1000}" go test ./attest/verify -run '^$' -bench '^BenchmarkVerifyAll$' -benchtime 3x -timeout 30m
status=0
scripts/bench-publish.sh || status=1
scripts/bench-verify.sh || status=1
scripts/bench-registry.sh || status=1
exit "$status"
