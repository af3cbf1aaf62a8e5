#!/usr/bin/env bash
# A test network whose links behave as between the participants' capitals, on this machine.
#
#   scripts/wan-testnet.sh up DIR [relay options]   start the relay, then every node of DIR
#   scripts/wan-testnet.sh down DIR                 stop the nodes, then the relay
#   scripts/wan-testnet.sh relay DIR [relay options]
#                                                   restart the relay alone (other options, like
#                                                   --lossy ZA:5); the nodes redial through it
#   scripts/wan-testnet.sh run DIR [relay options] -- COMMAND...
#                                                   up, COMMAND (with KP_TESTNET=DIR), down
#
# DIR is a network made by `kpledger testnet init --wan` (node k dials node m at 127.77.k.m on
# m's port). The relay (`kpledger testnet relay`, crates/kpledger/src/wan.rs) listens on those
# addresses and delays each direction of each link by the one-way delay between the two nodes'
# places (node-config/capitals.toml), with ±10% jitter (--jitter F); `--lossy CODE:PERCENT`
# makes one node's links lose packets. It writes DIR/wan.json (links, delays, the protocol's
# latency bound) and, when stopped, DIR/relay.json (what it carried).
#
# Why a relay and not `tc netem`: this machine's kernel has no netem qdisc (nor fq, which
# could pace packets by timestamp), so the delay cannot be put on the packets; the relay does
# it above TCP, in a process of its own whose CPU is measured apart from the nodes'.
#
# KPLEDGER names the kpledger binary (default target/release/kpledger, else target/debug). The
# nodes' base ports are those `testnet init` chose; nothing here needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
usage() { sed -n '2,/^set -euo/p' "$0" | grep '^#' | sed 's/^# \{0,1\}//' >&2; exit 2; }
[ $# -ge 2 ] || usage
cmd=$1; dir=$2; shift 2
kp="${KPLEDGER:-}"
if [ -z "$kp" ]; then
  for k in target/release/kpledger target/debug/kpledger; do [ -x "$k" ] && { kp=$k; break; }; done
fi
[ -n "$kp" ] && [ -x "$kp" ] || { echo "wan-testnet: no kpledger binary (build it, or set KPLEDGER)" >&2; exit 1; }
[ -f "$dir/genesis.json" ] || { echo "wan-testnet: $dir holds no test network (kpledger testnet init --wan --dir $dir)" >&2; exit 1; }

relay_alive() { [ -f "$dir/relay.pid" ] && kill -0 "$(cat "$dir/relay.pid")" 2>/dev/null; }

down() {
  "$kp" testnet down --dir "$dir" >/dev/null 2>&1 || true
  stop_relay
}

stop_relay() {
  if relay_alive; then
    local pid; pid=$(cat "$dir/relay.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/relay.pid"
}

start_relay() {
  if relay_alive; then echo "wan-testnet: the relay of $dir runs already (pid $(cat "$dir/relay.pid"))" >&2; exit 1; fi
  rm -f "$dir/wan.json"
  "$kp" testnet relay --dir "$dir" "$@" > "$dir/relay.json" 2> "$dir/relay.log" &
  echo $! > "$dir/relay.pid"
  # Everything started from here is stopped again if the rest fails.
  for _ in $(seq 1 100); do
    [ -f "$dir/wan.json" ] && break
    relay_alive || { echo "wan-testnet: the relay did not start:" >&2; cat "$dir/relay.log" >&2; down; exit 1; }
    sleep 0.1
  done
  [ -f "$dir/wan.json" ] || { echo "wan-testnet: the relay wrote no $dir/wan.json within 10 s" >&2; down; exit 1; }
}

up() {
  start_relay "$@"
  "$kp" testnet up --dir "$dir" >&2 || { echo "wan-testnet: the nodes did not start" >&2; down; exit 1; }
}

case "$cmd" in
  up) up "$@" ;;
  down) down ;;
  relay) stop_relay; start_relay "$@" ;;
  run)
    relay_args=()
    while [ $# -gt 0 ] && [ "$1" != "--" ]; do relay_args+=("$1"); shift; done
    [ "${1:-}" = "--" ] || usage
    shift
    trap 'down' EXIT
    up "${relay_args[@]}"
    KP_TESTNET="$dir" "$@"
    ;;
  *) usage ;;
esac
