#!/usr/bin/env bash
# Runs each fuzz target for FUZZTIME (default 2m): the DSL parser, the plan
# decoder and encoder, CEL conditions (compiled and evaluated), the immutability rules
# parser, the trust-policy parser, the audit log verifier, the audit log
# writer (hostile fields through Append and Verify), the lifecycle event and
# approval decoders and chain evaluation, the compliance report's reading
# of audit and monitor logs, sigstore bundles (decoded and verified), and
# manifests, indexes and referrers lists served by a registry. New crashers
# land in the packages' testdata/fuzz folders.
set -euo pipefail
cd "$(dirname "$0")/.."
t=${FUZZTIME:-2m}
go test ./ociwf/dsl -run '^$' -fuzz '^FuzzParse$' -fuzztime "$t"
go test ./ociwf/plan -run '^$' -fuzz '^FuzzDecode$' -fuzztime "$t"
go test ./ociwf/plan -run '^$' -fuzz '^FuzzConditions$' -fuzztime "$t"
go test ./ociwf/plan -run '^$' -fuzz '^FuzzEncode$' -fuzztime "$t"
go test ./policy/immutability -run '^$' -fuzz '^FuzzParse$' -fuzztime "$t"
go test ./policy/trust -run '^$' -fuzz '^FuzzParse$' -fuzztime "$t"
go test ./policy/audit -run '^$' -fuzz '^FuzzVerify$' -fuzztime "$t"
go test ./policy/audit -run '^$' -fuzz '^FuzzAppend$' -fuzztime "$t"
go test ./policy/lifecycle -run '^$' -fuzz '^FuzzDecodeEvent$' -fuzztime "$t"
go test ./policy/lifecycle -run '^$' -fuzz '^FuzzDecodeApproval$' -fuzztime "$t"
go test ./policy/lifecycle -run '^$' -fuzz '^FuzzEvaluate$' -fuzztime "$t"
go test ./attest/report -run '^$' -fuzz '^FuzzLogs$' -fuzztime "$t"
go test ./attest/accessory -run '^$' -fuzz '^FuzzBundle$' -fuzztime "$t"
go test ./attest/mirror -run '^$' -fuzz '^FuzzServed$' -fuzztime "$t"
