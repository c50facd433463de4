#!/usr/bin/env bash
# OCI distribution-spec conformance of `ociwf registry serve`: builds the
# pinned conformance suite (github.com/opencontainers/distribution-spec/
# conformance, from the Go module proxy, cached in .tools/bin), starts the
# registry on loopback and runs every workflow of the suite against it:
# pull, push (monolithic, chunked, streamed, cross-repository mount),
# content discovery (tag list, referrers with artifactType filtering,
# manifests with a subject) and content management (tag, manifest and blob
# deletes), over its OCI images, indexes, artifacts, subjects, data fields,
# non-distributable layers, custom fields and empty blobs.
#
# The registry runs with its default immutability rules: the suite's tags
# (image, index, artifact, tagged-artifact1, ...) are neither semantic
# versions nor cosign accessory tags, so nothing it pushes or deletes is
# protected, while every request still goes through ociwf's middleware and
# front. A denial in the registry log fails the run and is printed: it
# would mean the suite now uses a tag the rules protect.
#
# sha512 content is off (OCI_DATA_SHA512=false): Distribution's only
# digest algorithm is sha256, so it stores and serves a blob pushed as
# sha512:... under its sha256 digest, and every sha512 test fails the same
# way against stock Distribution.
#
# Zero failures and zero errors are required, and the only skips allowed
# are the optional features Distribution lacks (known_skips below); any
# other skip fails the run too, because the suite reports some missing
# behaviour (an OCI-Filters-Applied header on a filtered referrers list,
# ranged blob reads) as a skip, not a failure.
#
# The summary names every failing test with its first error; results.yaml,
# junit.xml, report.html (every request and response), the suite's output
# and the registry log are kept in the results directory the script prints.
#
#   scripts/conformance.sh                          # results in a new temp dir
#   CONFORMANCE_RESULTS=DIR scripts/conformance.sh  # results in DIR (CI artifacts)
#   OCI_LOG=debug scripts/conformance.sh            # log every request
set -euo pipefail
cd "$(dirname "$0")/.."

suite=github.com/opencontainers/distribution-spec/conformance
version=v0.0.0-20260831232431-97274622c111

# Skips allowed: optional features CNCF Distribution does not implement.
known_skips=(
  # a blob POST with its content (single-request push): Distribution opens
  # an upload session instead (202), which the spec allows
  "OCI Conformance Test/sha256 blobs/post only/blob-post-only"
  "OCI Conformance Test/sha256 blobs/bad digest post only/blob-post-only"
  # a mount without a source repository (?mount= without ?from=):
  # Distribution opens an upload session instead (202), which the spec allows
  "OCI Conformance Test/sha256 blobs/mount anonymous/blob-mount-anonymous"
)

# The suite, built once per version. `go build` of its main package, as its
# README says (a `go test -c` binary runs the same code in its deprecated
# legacy mode); in a copy, since the module cache is read-only.
bin="$PWD/.tools/bin"
conformance="$bin/oci-conformance"
stamp="$bin/.oci-conformance.version"
if [[ ! -x $conformance || "$(cat "$stamp" 2>/dev/null)" != "$suite@$version" ]]; then
  echo "installing $suite@$version" >&2
  mkdir -p "$bin"
  src=$(mktemp -d)
  trap 'rm -rf "$src"' EXIT
  # outside ociwf's module, which must not gain the suite as a dependency
  dir=$(cd "$src" && GOWORK=off go mod download -json "$suite@$version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')
  [[ -d $dir ]] || { echo "go mod download $suite@$version: no module directory" >&2; exit 1; }
  cp -R "$dir/." "$src"
  chmod -R u+w "$src"
  (cd "$src" && GOWORK=off GOFLAGS=-buildvcs=false go build -trimpath \
    -ldflags "-X main.Version=$version" -o "$conformance.tmp" .)
  rm -rf "$src"
  mv "$conformance.tmp" "$conformance"
  echo "$suite@$version" > "$stamp"
fi

work=$(mktemp -d)
results=${CONFORMANCE_RESULTS:-$(mktemp -d "${TMPDIR:-/tmp}/ociwf-conformance.XXXXXX")}
mkdir -p "$results"
results=$(cd "$results" && pwd)
source scripts/lib.sh
trap 'stop_registry; cp "$work/registry.log" "$results/" 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/" ./cmd/ociwf ./cmd/ociwf-registry
start_registry "$work/ociwf" 127.0.0.1:0 "$work/registry" "$work/registry.log"

# Only our settings and OCI_LOG reach the suite: it reads every OCI_*
# variable (and oci-conformance.yaml in its working directory, empty here).
# OCI_FILTER_TEST is dropped too: with it, this version of the suite fails
# to write its results.
for v in $(compgen -e); do
  case $v in
  OCI_LOG) ;;
  OCI_*) unset "$v" ;;
  esac
done
export OCI_VERSION=1.1 OCI_REGISTRY="$reg" OCI_TLS=disabled \
  OCI_REPO1=conformance/repo1 OCI_REPO2=conformance/repo2 \
  OCI_API_PULL=true OCI_API_PUSH=true \
  OCI_API_TAGS_LIST=true OCI_API_REFERRER=true \
  OCI_API_TAGS_DELETE=true OCI_API_MANIFESTS_DELETE=true OCI_API_BLOBS_DELETE=true \
  OCI_DATA_SHA512=false OCI_RESULTS_DIR="$results"
mkdir "$work/run"
limit=()
command -v timeout >/dev/null && limit=(timeout 900)
rc=0
(cd "$work/run" && ${limit[@]+"${limit[@]}"} "$conformance") >"$results/conformance.log" 2>&1 || rc=$?

# The summary. The suite's counts are per result (a data test counts each
# of its pushes and pulls); the failing and skipped tests are the leaves
# of its result tree, from junit.xml, with their status and first error
# from its output.
if [[ ! -s $results/junit.xml ]]; then
  echo "conformance suite produced no junit.xml (exit $rc):" >&2
  tail -n 20 "$results/conformance.log" >&2
  exit 1
fi
count() { sed -n "s/.*<testsuite [^>]* $1=\"\([0-9]*\)\".*/\1/p" "$results/junit.xml" | head -n1; }
total=$(count tests) failed=$(count failures) errors=$(count errors)
skipped=$(count skipped) disabled=$(count disabled)
: "${failed:=0}" "${errors:=0}" "${skipped:=0}" "${disabled:=0}"
passed=$((total - failed - errors - skipped - disabled))

# leaf name, status and first error, tab-separated, for every leaf that
# did not pass. Names repeat (a data test pushes several manifests): the
# n-th test case of a name in junit.xml is the n-th line of that name in
# the suite's result tree, both walks of the same tree in the same order.
awk '
  NR == FNR {
    if (match($0, /^ *- /)) { if (last != "" && !(last in msg)) msg[last] = substr($0, RLENGTH + 1); next }
    if (match($0, /: (Pass|Skip|Disabled|FAIL|Error|Unknown)$/)) {
      name = substr($0, 1, RSTART - 1); sub(/^ */, "", name)
      last = name SUBSEP (++seen[name]); status[last] = substr($0, RSTART + 2)
    }
    next
  }
  /<testcase / {
    name = $0; sub(/.*<testcase name="/, "", name); sub(/".*/, "", name)
    gsub(/&#34;/, "\"", name); gsub(/&#39;/, "'\''", name); gsub(/&lt;/, "<", name)
    gsub(/&gt;/, ">", name); gsub(/&amp;/, "\\&", name)
    k = name SUBSEP (++n[name]); st = status[k]
    if (/status="passed"/) next
    if (st == "" || st == "Pass") st = /status="skipped"/ ? "Skip" : "FAIL"
    print name "\t" st "\t" msg[k]
  }
' "$results/conformance.log" "$results/junit.xml" >"$work/leaves"

bad=0
unexpected=()
while IFS=$'\t' read -r name st _; do
  [[ $st == Skip ]] || continue
  known=0
  for k in "${known_skips[@]}"; do [[ $name == "$k" ]] && known=1; done
  ((known)) || unexpected+=("$name")
done <"$work/leaves"
leaves() { # status-regexp: the leaves with that status, once per name, with their first error
  awk -F'\t' -v re="^($1)\$" '
    $2 ~ re { k = $2 " " $1; if (!(k in n)) { order[++len] = k; msg[k] = $3 }; n[k]++ }
    END {
      for (i = 1; i <= len; i++) {
        k = order[i]; times = n[k] > 1 ? " (" n[k] " times)" : ""
        printf "  %s%s\n        %.300s\n", k, times, msg[k]
      }
    }' "$work/leaves"
}

echo "OCI conformance ($suite@$version) against ociwf registry serve:"
printf '  %d results: %d passed, %d failed, %d errors, %d skipped, %d disabled\n' \
  "$total" "$passed" "$failed" "$errors" "$skipped" "$disabled"
failing=$(leaves 'FAIL|Error|Unknown')
if [[ -n $failing ]]; then
  bad=1
  echo "failing tests:"
  printf '%s\n' "$failing"
fi
skips=$(leaves Skip)
[[ -z $skips ]] || printf 'skipped tests:\n%s\n' "$skips"
if ((${#unexpected[@]})); then
  bad=1
  echo "unexpected skips (not in known_skips):"
  printf '  %s\n' "${unexpected[@]}"
fi
if grep -q '"msg":"denied"' "$work/registry.log"; then
  bad=1
  echo "the immutability rules denied $(grep -c '"msg":"denied"' "$work/registry.log") requests of the suite, first:"
  grep '"msg":"denied"' "$work/registry.log" | head -n 5 | sed 's/^/  /'
fi
if ((rc != 0 && !bad)); then
  bad=1
  echo "conformance suite exited $rc:"
  tail -n 5 "$results/conformance.log" | sed 's/^/  /'
fi
echo "results: $results (report.html, junit.xml, results.yaml, conformance.log, registry.log)"
if ((bad)); then
  echo "FAIL conformance" >&2
  exit 1
fi
echo "ok   conformance"
