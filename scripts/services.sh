#!/usr/bin/env bash
# Installs the real services and programs the tests start themselves, from
# Debian's packages, when they are not installed yet: chromium (renders
# the compliance report's HTML dashboard in headless mode) and
# redis-server (the registry extension's lock service across replicas),
# graphviz (dot parses `compile --graph dot`) and systemd (systemd-analyze
# verifies the deployment docs' unit).
# Needs root or passwordless sudo for apt-get; prints nothing on success
# when everything is already there.
set -euo pipefail
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v dot >/dev/null 2>&1 || need+=(graphviz)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ ${#need[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo -n"
echo "services.sh: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { $sudo apt-get update -qq && $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  echo "services.sh: could not install ${need[*]}; install them with apt-get and rerun" >&2
  exit 1
fi
# The package starts a system redis on port 6379; the tests start their own.
if [[ " ${need[*]} " == *" redis-server "* ]]; then
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || $sudo service redis-server stop >/dev/null 2>&1 || true
fi
