#!/usr/bin/env bash
# Proves the README's two commands on a fresh clone, as a newcomer runs
# them: clones this checkout's HEAD into a temporary directory and, with
# empty Go module and build caches (only Go and git needed beforehand),
# runs the quickstart there, timed cold, then the test command
# (scripts/test.sh, which installs what the tests need, as CI does).
#
#   scripts/fresh-clone-check.sh
#   QUICKSTART_ONLY=1 scripts/fresh-clone-check.sh   # the cold quickstart alone
#   KEEP=1 scripts/fresh-clone-check.sh              # keep the clone and caches
set -euo pipefail
cd "$(dirname "$0")/.."
if ! git diff --quiet HEAD || [[ -n $(git ls-files --others --exclude-standard) ]]; then
  echo "fresh-clone-check: uncommitted changes are not in the clone; it checks HEAD $(git rev-parse --short HEAD)" >&2
fi
tmp=$(mktemp -d)
cleanup() {
  if [[ -n ${KEEP:-} ]]; then
    echo "kept $tmp"
    return
  fi
  chmod -R u+w "$tmp" 2>/dev/null || true # the module cache is read-only
  rm -rf "$tmp"
}
trap cleanup EXIT
git clone -q --no-local . "$tmp/ociwf"
export GOMODCACHE="$tmp/go/mod" GOCACHE="$tmp/go/cache" GOPATH="$tmp/go"
cd "$tmp/ociwf"
echo "fresh clone of $(git rev-parse --short HEAD) in $tmp/ociwf; empty module and build caches"

started=$(date +%s)
PORT=${PORT:-0} scripts/quickstart.sh
quickstart=$(($(date +%s) - started))
echo "cold quickstart: ${quickstart} s (module downloads and build included)"
[[ -n ${QUICKSTART_ONLY:-} ]] && exit 0

started=$(date +%s)
scripts/test.sh
echo "fresh-clone-check ok: cold quickstart ${quickstart} s, test command $(($(date +%s) - started)) s"
