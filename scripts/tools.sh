#!/usr/bin/env bash
# Installs the pinned stock tools the interop tests run against, and ko,
# which scripts/image.sh builds the registry's image with, into .tools/bin
# (git-ignored), building them from the Go module proxy.
# Idempotent: a tool already at its pinned version is kept. With names
# (scripts/tools.sh ko), installs only those. Prints the bin directory.
set -euo pipefail
cd "$(dirname "$0")/.."
bin="$PWD/.tools/bin"
mkdir -p "$bin"

only=("$@")
install() { # name module@version: installs the command as .tools/bin/name
  local name=$1 mod=$2 stamp="$bin/.$1.version"
  if [[ ${#only[@]} -gt 0 && " ${only[*]} " != *" $name "* ]]; then
    return
  fi
  if [[ -x "$bin/$name" && "$(cat "$stamp" 2>/dev/null)" == "$mod" ]]; then
    return
  fi
  echo "installing $mod as $name" >&2
  # go install names the binary after the module's command; build into a
  # scratch GOBIN so two versions of one command can sit side by side.
  local tmp
  tmp=$(mktemp -d "$bin/.install.XXXXXX")
  GOBIN="$tmp" GOFLAGS=-buildvcs=false go install "$mod" || { rm -rf "$tmp"; return 1; }
  local built=("$tmp"/*)
  [[ ${#built[@]} -eq 1 && -x ${built[0]} ]] || { echo "tools.sh: $mod built ${#built[@]} files" >&2; rm -rf "$tmp"; return 1; }
  mv -f "${built[0]}" "$bin/$name"
  rm -rf "$tmp"
  echo "$mod" > "$stamp"
}

install oras oras.land/oras/cmd/oras@v1.3.6
install cosign github.com/sigstore/cosign/v2/cmd/cosign@v2.6.5
install cosign3 github.com/sigstore/cosign/v3/cmd/cosign@v3.1.3
install crane github.com/google/go-containerregistry/cmd/crane@v0.22.1
install registry github.com/distribution/distribution/v3/cmd/registry@v3.1.2
install gofakes3 github.com/johannesboyne/gofakes3/cmd/gofakes3@v1.2.0   # an S3 server with conditional writes, for the S3 storage tests
install ko github.com/google/ko@v0.19.1   # builds the ociwf-registry image without a daemon (scripts/image.sh)
echo "$bin"
