#!/usr/bin/env bash
# WAN benchmark: a network of N participants (default 59) and 2 observers whose links are
# delayed as between their capitals by the WAN relay (scripts/wan-testnet.sh), on this machine.
# Measures the first commit after start, commit latency p50/p99 at a light steady load beside
# the bound that the protocol's message delays impose over the same links (computed by the
# relay, DIR/wan.json: the ratio is the figure), sustained events/s when offered more than the
# network takes, and the light load again while one participant's links lose packets. CPU of
# the nodes and of the relay are reported apart. Prints one JSON document and keeps it in
# target/bench-wan.json.
# Environment: KP_BENCH_WAN_PARTICIPANTS (59), KP_BENCH_WAN_LIGHT_RATE / _LIGHT_CERTS (100
# events/s, 300 certificates), KP_BENCH_WAN_RATE / _CERTS (900, 1500: the sustained run; rate 0
# skips it), KP_BENCH_WAN_LOSSY (ZA:5, a node and its loss in percent; empty skips),
# KP_ROCKSDB_LIB (release by default), KP_BENCH_BIN (a kpledger binary to measure instead).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh "${KP_ROCKSDB_LIB:-release}"
if [ -n "${KP_BENCH_BIN:-}" ]; then
    kp="$KP_BENCH_BIN"
else
    cargo build --locked --release -p kpledger >&2
    kp=./target/release/kpledger
fi
export KPLEDGER="$kp"
source scripts/lib-bench.sh
n=${KP_BENCH_WAN_PARTICIPANTS:-59}
lrate=${KP_BENCH_WAN_LIGHT_RATE:-100}; lcerts=${KP_BENCH_WAN_LIGHT_CERTS:-300}
srate=${KP_BENCH_WAN_RATE:-900}; scerts=${KP_BENCH_WAN_CERTS:-1500}
lossy=${KP_BENCH_WAN_LOSSY-ZA:5}
dir="target/bench-wan-$n"
rm -rf "$dir"
"$kp" testnet init --participants "$n" --wan --dir "$dir" --base-port 26000 >&2
trap 'bash scripts/wan-testnet.sh down "$dir"' EXIT

relay_ticks() { awk '{ print $14 + $15 }' "/proc/$(cat "$dir/relay.pid")/stat" 2>/dev/null || echo 0; }
field() { sed -n "s/^ *\"$2\": \([0-9.]*\),\{0,1\}$/\1/p" <<<"$1" | head -1; }
first=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)

start=$(date +%s.%N)
bash scripts/wan-testnet.sh up "$dir"
for _ in $(seq 1 1200); do h=$(height "$dir" "$dir/$first" 2>/dev/null || true); [ "${h:-0}" -ge 1 ] && break; sleep 0.1; done
first_commit=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
echo "== first commit after $first_commit s" >&2
table=$(cat "$dir/wan.json")
bound_p50=$(field "$table" p50_s); bound_p99=$(field "$table" p99_s)

run() { # run NAME CERTS RATE SEED: a load, with the CPU of nodes and relay over it
    local ticks rticks out cpu rcpu
    echo "== $1: $2 certificates ($(($2 * 3)) events) at $3 events/s" >&2
    ticks=$(cpu_ticks "$dir"); rticks=$(relay_ticks)
    out=$(load_json --dir "$dir" --certificates "$2" --rate "$3" --seed "$4" --timeout 600)
    ticks=$(($(cpu_ticks "$dir") - ticks)); rticks=$(($(relay_ticks) - rticks))
    local e; e=$(committed "$out"); e=${e:-0}
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v e="$e" -v n="$((n + 2))" \
        'BEGIN { if (e > 0) printf "%.1f", t / hz / e / n * 1e6; else print "null" }')
    rcpu=$(awk -v t="$rticks" -v hz="$(getconf CLK_TCK)" -v e="$e" \
        'BEGIN { if (e > 0) printf "%.1f", t / hz / e * 1e6; else print "null" }')
    echo "{\"load\": $out, \"cpu_us_per_event_per_node\": $cpu, \"relay_cpu_us_per_event\": $rcpu}"
}
ratio() { awk -v m="$(field "$1" latency_ms_p50)" -v b="$bound_p50" 'BEGIN { if (b > 0 && m != "") printf "%.2f", m / 1000 / b; else print "null" }'; }

light=$(run light "$lcerts" "$lrate" 2)
sustained=null
if [ "$srate" != "0" ]; then sustained=$(run sustained "$scerts" "$srate" 3); fi
lossy_run=null
if [ -n "$lossy" ]; then
    echo "== restarting the relay with --lossy $lossy" >&2
    bash scripts/wan-testnet.sh relay "$dir" --lossy "$lossy"
    # The nodes redial through the new relay: wait until the chain moves again.
    h0=$(height "$dir" "$dir/$first"); h0=${h0:-0}
    for _ in $(seq 1 600); do h=$(height "$dir" "$dir/$first" 2>/dev/null || true); [ "${h:-0}" -gt "$h0" ] && break; sleep 0.2; done
    lossy_run=$(run "light, $lossy loss" "$lcerts" "$lrate" 4)
    lossy_run="{\"lossy\": \"$lossy\", \"run\": $lossy_run, \"p50_over_bound\": $(ratio "$lossy_run")}"
fi
rss=$(peak_rss_mb "$dir")
bash scripts/wan-testnet.sh down "$dir"
trap - EXIT
relay_report=$(cat "$dir/relay.json" 2>/dev/null || echo null)
echo "{\"participants\": $n, \"observers\": 2, \"first_commit_s\": $first_commit, \
\"bound\": {\"p50_s\": $bound_p50, \"p99_s\": $bound_p99}, \
\"light\": $light, \"light_p50_over_bound\": $(ratio "$light"), \"sustained\": $sustained, \
\"with_loss\": $lossy_run, \"peak_rss_mb_per_node\": $rss, \"relay\": $relay_report}" | tee target/bench-wan.json
