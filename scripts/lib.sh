# Shared by the scripts: source it, do not run it.

# start_registry OCIWF ADDR ROOT LOG starts `ociwf registry serve` on ADDR
# (port 0 picks a free one) with storage under ROOT and output in LOG, waits
# until it listens, and sets $registry (its pid) and $reg (its host:port).
start_registry() {
  local ociwf=$1 addr=$2 root=$3 log=$4
  : >"$log" # exists before the server writes it: read below at once
  "$ociwf" registry serve --addr "$addr" --root "$root" >"$log" 2>&1 &
  registry=$!
  for _ in $(seq 200); do
    reg=$(sed -n 's|^Serving on http://\([^ ]*\) .*|\1|p' "$log")
    [[ -n $reg ]] && return 0
    kill -0 "$registry" 2>/dev/null || break
    sleep 0.05
  done
  echo "ociwf registry serve did not start:" >&2
  cat "$log" >&2
  return 1
}

# stop_registry stops what start_registry started.
stop_registry() {
  [[ -n ${registry:-} ]] || return 0
  kill "$registry" 2>/dev/null
  wait "$registry" 2>/dev/null || true
}
