# Sourced by the network benchmarks (bench-network.sh, bench-wan.sh), after they set $kp to
# the kpledger binary they measure: reading a test network's nodes and processes.

api() { sed -n 's/^api = "\(.*\)"$/\1/p' "$1/node.toml"; }
# The height of node directory $2 of network $1 (asked anonymously: status is anyone's).
height() { "$kp" --json --testnet "$1" --as anonymous status --node "$(api "$2")" | sed -n 's/^  "height": \([0-9]*\),$/\1/p'; }
peak_rss_mb() { # the highest VmHWM over the network's node processes, and their mean, in MB
    local max=0 sum=0 n=0 pid kb
    for f in "$1"/*/node.pid "$1"/observers/*/node.pid; do
        pid=$(cat "$f"); kb=$(sed -n 's/^VmHWM:[[:space:]]*\([0-9]*\) kB$/\1/p' "/proc/$pid/status" 2>/dev/null || echo 0)
        kb=${kb:-0}; sum=$((sum + kb)); n=$((n + 1)); if [ "$kb" -gt "$max" ]; then max=$kb; fi
    done
    echo "{\"max\": $((max / 1024)), \"mean\": $((sum / n / 1024))}"
}

cpu_ticks() { # user + system clock ticks of the network's node processes so far
    local sum=0 f t
    for f in "$1"/*/node.pid "$1"/observers/*/node.pid; do
        t=$(awk '{ print $14 + $15 }' "/proc/$(cat "$f")/stat" 2>/dev/null || echo 0)
        sum=$((sum + ${t:-0}))
    done
    echo "$sum"
}
committed() { sed -n 's/^  "events_committed": \([0-9]*\),$/\1/p' <<<"$1"; }
# `kpledger load ARGS` as JSON: its report, also when it exits non-zero for an incomplete run
# (the report says `"complete": false`), or null when it printed none.
load_json() { local out; out=$("$kp" load "$@") || true; echo "${out:-null}"; }
