#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME (default 2m): the DSL parser and the plan
# decoder. New crashers land in the packages' testdata/fuzz folders.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-2m}
go test ./ociwf/dsl -run '^$' -fuzz '^FuzzParse$' -fuzztime "$t"
go test ./ociwf/plan -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$t"
