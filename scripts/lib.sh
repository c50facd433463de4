# Shared by the scripts: source it, do not run it.

# start_registry OCIWF ADDR ROOT LOG starts `ociwf registry serve` on ADDR
# (port 0 picks a free one) with storage under ROOT, metrics on a free
# loopback port and output in LOG, waits until it listens, and sets
# $registry (the pid to stop it by), $reg (its host:port), $reg_metrics
# (the metrics listener's host:port) and $registry_server (the pid of the
# ociwf-registry process ociwf hands over to, whose CPU time is the
# registry's).
start_registry() {
  local ociwf=$1 addr=$2 root=$3 log=$4
  : >"$log" # exists before the server writes it: read below at once
  "$ociwf" registry serve --addr "$addr" --root "$root" --metrics-addr 127.0.0.1:0 >"$log" 2>&1 &
  registry=$!
  await_listening "ociwf registry serve" 's|^Serving on http://\([^ ]*\) .*|\1|p' "$log"
  reg_metrics=$(sed -n 's|.*"msg":"registry listening".*"metrics":"\([^"]*\)".*|\1|p' "$log" | head -1)
  registry_server=$(pgrep -n -P "$registry" || echo "$registry")
}

# served prints how many requests the registry start_registry started has
# answered (ociwf_registry_requests_total, every route).
served() {
  curl -fsS "http://$reg_metrics/metrics" | awk '/^ociwf_registry_requests_total/ {s += $NF} END {printf "%d\n", s}'
}

# await_listening WHAT SCRIPT LOG waits until the sed SCRIPT finds the
# address the server $registry listens on in LOG, and sets $reg to it;
# it fails, showing LOG, if the server exits or takes over 10 s.
await_listening() {
  local what=$1 script=$2 log=$3
  for _ in $(seq 200); do
    reg=$(sed -n "$script" "$log")
    [[ -n $reg ]] && return 0
    kill -0 "$registry" 2>/dev/null || break
    sleep 0.05
  done
  echo "$what did not start:" >&2
  cat "$log" >&2
  return 1
}

# stop_registry stops what start_registry or start_stock_registry started.
stop_registry() {
  [[ -n ${registry:-} ]] || return 0
  kill "$registry" 2>/dev/null
  wait "$registry" 2>/dev/null || true
  registry=
}

# start_stock_registry REGISTRY ROOT LOG starts stock Distribution
# (`registry serve`, the binary REGISTRY) on a free loopback port with
# filesystem storage under ROOT, deletes enabled and output in LOG, waits
# until it listens, and sets $registry (its pid) and $reg (its host:port),
# as start_registry does; stop_registry stops it. Distribution 3.1.2 has no
# referrers API: clients keep referrers in the sha256-<hex> fallback tag.
start_stock_registry() {
  local bin=$1 root=$2 log=$3
  mkdir -p "$root"
  cat >"$root.yml" <<CONFIG
version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: $root
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
CONFIG
  : >"$log" # exists before the server writes it: read below at once
  "$bin" serve "$root.yml" >"$log" 2>&1 &
  registry=$!
  await_listening "stock registry serve" 's|.*msg="listening on \(127\.0\.0\.1:[0-9]*\)".*|\1|p' "$log"
}
