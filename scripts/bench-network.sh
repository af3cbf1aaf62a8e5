#!/usr/bin/env bash
# Network benchmark: live networks of `kpledger node` processes on loopback (4 and 59
# participants, plus 2 observers each), driven by `kpledger load`: sustained events/s with every
# node verifying every event (offered more than the network takes), commit latency p50/p99
# (under that overload, where queueing dominates, and again at a steady rate below it), peak
# RSS per node, the nodes' CPU time per committed event and node; then the catch-up speed
# (blocks/s) of an observer's node that missed KP_BENCH_CATCHUP_BLOCKS blocks (default 10,000)
# of the 4-node network. Prints one JSON document and keeps it in target/bench-network.json.
# Environment: KP_BENCH_SIZES (default "4 59"), KP_BENCH_CERTS_<N> / KP_BENCH_RATE_<N>
# (certificates and target events/s of the run with N participants), KP_BENCH_STEADY_RATE_<N> /
# KP_BENCH_STEADY_CERTS_<N> (the steady run's; rate 0 skips it), KP_BENCH_CATCHUP_BLOCKS
# (0 skips the catch-up run), KP_BENCH_TLS_COST (default 1: the 4-participant overload run
# again on a network whose APIs serve plaintext, `testnet init --plaintext-api`, for the cost of
# TLS as the ratio of events/s measured in this run; 0 skips it), KP_ROCKSDB_LIB (release by default), KP_BENCH_BIN (a kpledger
# binary to measure instead of building this tree's: an earlier build, for a same-hour A/B).
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
sizes="${KP_BENCH_SIZES:-4 59}"
catchup_blocks="${KP_BENCH_CATCHUP_BLOCKS:-10000}"
# Below the ephemeral range (32768 and up), where the nodes' own outgoing connections take ports.
base=23000
running=""
cleanup() { if [ -n "$running" ]; then "$kp" testnet down --dir "$running" >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

source scripts/lib-bench.sh

results=""
for n in $sizes; do
    dir="target/bench-network-$n"
    rm -rf "$dir"
    # Each network on ports of its own: the previous one's processes may still be exiting.
    base=$((base + 1000))
    "$kp" testnet init --participants "$n" --dir "$dir" --base-port "$base" >&2
    running="$dir"
    "$kp" testnet up --dir "$dir" >&2
    first=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)
    for _ in $(seq 1 600); do [ "$(height "$dir" "$dir/$first")" -ge 1 ] && break; sleep 0.5; done
    certs_var="KP_BENCH_CERTS_$n"; rate_var="KP_BENCH_RATE_$n"
    if [ "$n" -le 8 ]; then certs=${!certs_var:-5000}; rate=${!rate_var:-8000}; else certs=${!certs_var:-1500}; rate=${!rate_var:-900}; fi
    echo "== $n participants: $certs certificates ($((certs * 3)) events) at $rate events/s" >&2
    ticks=$(cpu_ticks "$dir")
    load=$(load_json --dir "$dir" --certificates "$certs" --rate "$rate" --timeout 600)
    ticks=$(($(cpu_ticks "$dir") - ticks))
    rss=$(peak_rss_mb "$dir")
    # CPU time of the node processes per committed event and node: steadier than events/s
    # from one run to the next (the machine is shared).
    nodes=$(ls "$dir"/*/node.pid "$dir"/observers/*/node.pid | wc -l)
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v e="$(committed "$load")" -v n="$nodes" \
        'BEGIN { if (e > 0) printf "%.1f", t / hz / e / n * 1e6; else print "null" }')
    # The same network at a steady rate below what it takes: the commit latency clients see.
    steady_rate_var="KP_BENCH_STEADY_RATE_$n"; steady_certs_var="KP_BENCH_STEADY_CERTS_$n"
    if [ "$n" -le 8 ]; then srate=${!steady_rate_var:-4000}; scerts=${!steady_certs_var:-2000}; else srate=${!steady_rate_var:-400}; scerts=${!steady_certs_var:-1000}; fi
    steady="null"
    if [ "$srate" != "0" ]; then
        echo "== $n participants, steady: $scerts certificates ($((scerts * 3)) events) at $srate events/s" >&2
        steady=$(load_json --dir "$dir" --certificates "$scerts" --rate "$srate" --seed 2 --timeout 600)
    fi
    results="$results{\"participants\": $n, \"load\": $load, \"steady\": $steady, \"peak_rss_mb_per_node\": $rss, \"cpu_us_per_event_per_node\": $cpu},"
    "$kp" testnet down --dir "$dir" >&2
    running=""
done

# The cost of TLS: the 4-participant overload run (TLS, mutual, as every run above) again on a
# network whose APIs serve plaintext on loopback; the same certificates, rate and seed.
tls_cost="null"
if [ "${KP_BENCH_TLS_COST:-1}" != "0" ]; then
    certs=${KP_BENCH_CERTS_4:-5000}; rate=${KP_BENCH_RATE_4:-8000}
    runs=""
    for api_mode in tls plaintext tls plaintext; do
        dir="target/bench-network-4-$api_mode"
        rm -rf "$dir"
        base=$((base + 1000))
        flag=""; [ "$api_mode" = plaintext ] && flag="--plaintext-api"
        "$kp" testnet init --participants 4 --dir "$dir" --base-port "$base" $flag >&2
        running="$dir"
        "$kp" testnet up --dir "$dir" >&2
        first=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)
        for _ in $(seq 1 600); do [ "$(height "$dir" "$dir/$first")" -ge 1 ] && break; sleep 0.5; done
        echo "== TLS cost: 4 participants, API $api_mode, $certs certificates at $rate events/s" >&2
        load=$(load_json --dir "$dir" --certificates "$certs" --rate "$rate" --timeout 600)
        eps=$(sed -n 's/^  "events_per_second": \([0-9.]*\),$/\1/p' <<<"$load"); eps=${eps:-0}
        runs="$runs{\"api\": \"$api_mode\", \"events_per_second\": $eps},"
        "$kp" testnet down --dir "$dir" >&2
        running=""
    done
    # Alternated, twice each, so that a drift of the shared machine weighs on both alike.
    tls_cost=$(awk -v r="${runs%,}" 'BEGIN {
        n = split(r, parts, "},"); t = 0; p = 0
        for (i = 1; i <= n; i++) { split(parts[i], f, "\"events_per_second\": "); v = f[2] + 0
            if (parts[i] ~ /"tls"/) t += v; else p += v }
        printf "{\"runs\": [%s], \"tls_events_per_second\": %.0f, \"plaintext_events_per_second\": %.0f, \"tls_over_plaintext\": %.3f}", r, t / 2, p / 2, (p > 0 ? t / p : 0) }')
fi

catchup="null"
if [ "$catchup_blocks" -gt 0 ]; then
    dir="target/bench-network-catchup"
    rm -rf "$dir"
    base=$((base + 1000))
    "$kp" testnet init --participants 4 --dir "$dir" --base-port "$base" >&2
    # Empty blocks back to back: the chain grows as fast as consensus goes.
    for f in "$dir"/*/node.toml "$dir"/observers/*/node.toml; do
        printf '\n[consensus]\nidle_block_ms = 0\n' >> "$f"
    done
    running="$dir"
    "$kp" testnet up --dir "$dir" >&2
    observer="$dir/observers/CSC"
    kill -TERM "$(cat "$observer/node.pid")"; sleep 2; rm -rf "$observer/data"; rm -f "$observer/node.pid"
    first=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)
    echo "== growing the chain to $catchup_blocks blocks" >&2
    while [ "$(height "$dir" "$dir/$first")" -lt "$catchup_blocks" ]; do sleep 2; done
    target=$(height "$dir" "$dir/$first")
    "$kp" node --config "$observer/node.toml" >"$observer/catchup.log" 2>&1 &
    echo $! > "$observer/node.pid"
    start=$(date +%s.%N)
    while true; do
        h=$(height "$dir" "$observer" 2>/dev/null || echo 0); h=${h:-0}
        [ "$h" -ge "$target" ] && break
        sleep 0.2
    done
    end=$(date +%s.%N)
    catchup=$(awk -v b="$target" -v s="$start" -v e="$end" 'BEGIN { printf "{\"blocks\": %d, \"seconds\": %.2f, \"blocks_per_second\": %.0f}", b, e - s, b / (e - s) }')
    "$kp" testnet down --dir "$dir" >&2
    running=""
fi
echo "{\"networks\": [${results%,}], \"tls_cost\": $tls_cost, \"catch_up\": $catchup}" | tee target/bench-network.json
