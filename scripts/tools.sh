#!/usr/bin/env bash
# Installs the pinned stock tools the interop tests run against into
# .tools/bin (git-ignored), building them from the Go module proxy.
# Idempotent: a tool already at its pinned version is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
mkdir -p "$bin"

install() { # name module@version
  local name=$1 mod=$2 stamp="$bin/.$1.version"
  if [[ -x "$bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$mod" ]]; then
    return
  fi
  echo "installing $mod" >&2
  GOBIN="$bin" GOFLAGS=-buildvcs=false go install "$mod"
  echo "$mod" > "$stamp"
}

install oras oras.land/oras/cmd/oras@v1.3.6
install cosign github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
install crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
echo "$bin"
