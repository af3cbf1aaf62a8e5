#!/usr/bin/env bash
# Network benchmark: live networks of `kpledger node` processes on loopback (4 and 59
# participants, plus 2 observers each), driven by `kpledger load`. For each network: the first
# commit after start; at steady offered rates (100, 300 and 600 events/s) commit latency
# p50/p99 and what was committed; then offered more than the network takes, the saturation
# throughput (every node verifies every event) and its latency (queueing). Each run also gives
# the nodes' CPU time per committed event and node, and per block and node the messages they
# wrote to peers, the writes that carried them and the system calls they made (perf's
# raw_syscalls tracepoint over the node processes; null where perf cannot count it); peak RSS
# per node over the whole network's life. Then the cost of TLS and the catch-up speed (blocks/s)
# of an observer's node that missed KP_BENCH_CATCHUP_BLOCKS blocks (default 10,000) of the
# 4-node network. Prints one JSON document and keeps it in target/bench-network.json.
# With KP_BENCH_BEFORE_BIN (an earlier kpledger build), every network is measured with that
# build and with this tree's, alternated, in the same run: the before/after comparison.
# Environment: KP_BENCH_SIZES (default "4 59"), KP_BENCH_RATES (steady rates, default
# "100 300 600"), KP_BENCH_SECONDS (each steady run's length at its rate, default 12),
# KP_BENCH_SATURATION_<N> (events/s offered for the saturation run with N participants; default
# 8,000 at 8 or fewer, 1,500 above) and KP_BENCH_SATURATION_CERTS_<N> (5,000 / 2,000),
# KP_BENCH_PROFILE (a steady rate, say 100: during that run, `perf record` samples the whole
# machine for 8 s and the flat profile by library and symbol goes to
# target/bench-network-<N>-profile.txt), KP_BENCH_CATCHUP_BLOCKS (0 skips the catch-up run), KP_BENCH_TLS_COST (default 1: the
# 4-participant saturation run again on a network whose APIs serve plaintext, `testnet init
# --plaintext-api`, for the cost of TLS as the ratio of events/s measured in this run; 0 skips
# it), KP_ROCKSDB_LIB (release by default), KP_BENCH_BIN (a kpledger binary to measure instead
# of building this tree's).
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
after_bin="$kp"
before_bin="${KP_BENCH_BEFORE_BIN:-}"
sizes="${KP_BENCH_SIZES:-4 59}"
rates="${KP_BENCH_RATES:-100 300 600}"
seconds="${KP_BENCH_SECONDS:-12}"
catchup_blocks="${KP_BENCH_CATCHUP_BLOCKS:-10000}"
# Below the ephemeral range (32768 and up), where the nodes' own outgoing connections take ports.
base=23000
running=""
cleanup() { if [ -n "$running" ]; then "$kp" testnet down --dir "$running" >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

source scripts/lib-bench.sh

perf_ok=0
if command -v perf >/dev/null && perf stat -e raw_syscalls:sys_enter -x, true >/dev/null 2>&1; then perf_ok=1; fi
[ "$perf_ok" = 1 ] || echo "bench-network: perf cannot count raw_syscalls here: system calls are reported as null" >&2

pids() { cat "$1"/*/node.pid "$1"/observers/*/node.pid | paste -sd, -; }
node_count() { ls "$1"/*/node.pid "$1"/observers/*/node.pid | wc -l; }
# The sum over the network's nodes of a counter of theirs (0 for a build that has none).
metric_sum() {
    local sum=0 f addr v
    for f in "$1"/*/node.toml "$1"/observers/*/node.toml; do
        addr=$(sed -n 's/^metrics = "\(.*\)"$/\1/p' "$f")
        v=$(curl -s --max-time 5 "http://$addr/metrics" | awk -v k="$2" '$1 == k { print $2 }')
        sum=$((sum + ${v:-0}))
    done
    echo "$sum"
}

# One load run on network $1: `kpledger load` with the rest of the arguments, and around it the
# nodes' CPU, system calls, blocks and messages. Prints the load report with those added.
measured_load() {
    local dir="$1"; shift
    local first ticks0 ticks h0 h1 m0 m1 w0 w1 nodes perf_out perf_pid=""
    first=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)
    nodes=$(node_count "$dir")
    h0=$(height "$dir" "$dir/$first"); m0=$(metric_sum "$dir" kp_net_messages_sent_total); w0=$(metric_sum "$dir" kp_net_writes_total)
    ticks0=$(cpu_ticks "$dir")
    perf_out=$(mktemp)
    if [ "$perf_ok" = 1 ]; then
        perf stat -e raw_syscalls:sys_enter -x, -o "$perf_out" -p "$(pids "$dir")" >/dev/null 2>&1 &
        perf_pid=$!
    fi
    local load profile_pid=""
    if [ -n "${KP_BENCH_PROFILE:-}" ] && [ "${KP_BENCH_PROFILE}" = "${offered:-}" ] && command -v perf >/dev/null; then
        (sleep 3; perf record -a -g -F 499 -o "target/bench-network-$nodes.perf" -- sleep 8 >/dev/null 2>&1) &
        profile_pid=$!
    fi
    load=$(load_json --dir "$dir" "$@")
    if [ -n "$profile_pid" ]; then
        wait "$profile_pid" || true
        perf report -i "target/bench-network-$nodes.perf" --no-children --sort dso,symbol --stdio 2>/dev/null \
            | grep -v '^$' | grep '%' | head -60 > "target/bench-network-$((nodes - 2))-profile.txt" || true
        echo "bench-network: profile in target/bench-network-$((nodes - 2))-profile.txt" >&2
    fi
    ticks=$(($(cpu_ticks "$dir") - ticks0))
    local syscalls=null
    if [ -n "$perf_pid" ]; then
        kill -INT "$perf_pid" 2>/dev/null || true; wait "$perf_pid" 2>/dev/null || true
        syscalls=$(awk -F, '/raw_syscalls:sys_enter/ { print $1 }' "$perf_out"); syscalls=${syscalls:-null}
    fi
    rm -f "$perf_out"
    h1=$(height "$dir" "$dir/$first"); m1=$(metric_sum "$dir" kp_net_messages_sent_total); w1=$(metric_sum "$dir" kp_net_writes_total)
    local cpu per_block
    cpu=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v e="$(committed "$load")" -v n="$nodes" \
        'BEGIN { if (e > 0) printf "%.1f", t / hz / e / n * 1e6; else print "null" }')
    per_block=$(awk -v n="$nodes" -v b="$((h1 - h0))" -v m="$((m1 - m0))" -v w="$((w1 - w0))" -v s="$syscalls" 'BEGIN {
        if (b <= 0) { print "\"blocks\": 0"; exit }
        printf "\"blocks\": %d, \"messages_per_block_per_node\": %s, \"writes_per_block_per_node\": %s, \"syscalls_per_block_per_node\": %s",
            b, (m > 0 ? sprintf("%.1f", m / b / n) : "null"), (w > 0 ? sprintf("%.1f", w / b / n) : "null"),
            (s == "null" ? "null" : sprintf("%.0f", s / b / n)) }')
    echo "{\"load\": $load, \"cpu_us_per_event_per_node\": $cpu, $per_block}"
}

# Measures a network of $2 participants with kpledger binary $1: prints its JSON.
measure_network() {
    local bin="$1" n="$2" dir start first_commit runs="" sat sat_rate sat_certs rss
    kp="$bin"
    dir="target/bench-network-$n"
    rm -rf "$dir"
    # Each network on ports of its own: the previous one's processes may still be exiting.
    base=$((base + 1000))
    "$kp" testnet init --participants "$n" --dir "$dir" --base-port "$base" >&2
    running="$dir"
    start=$(date +%s.%N)
    "$kp" testnet up --dir "$dir" >&2
    local lead
    lead=$(sed -n 's/^      "id": "\(..\)",$/\1/p' "$dir/genesis.json" | head -1)
    for _ in $(seq 1 1200); do [ "$(height "$dir" "$dir/$lead")" -ge 1 ] && break; sleep 0.1; done
    first_commit=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    local seed=1 rate certs
    for rate in $rates; do
        certs=$(( (rate * seconds + 2) / 3 ))
        echo "== $bin, $n participants, steady: $certs certificates ($((certs * 3)) events) at $rate events/s" >&2
        offered=$rate
        runs="$runs{\"offered\": $rate, $(measured_load "$dir" --certificates "$certs" --rate "$rate" --seed "$seed" --timeout 600 | sed 's/^{//'),"
        seed=$((seed + 1))
    done
    local sat_var="KP_BENCH_SATURATION_$n" sat_certs_var="KP_BENCH_SATURATION_CERTS_$n"
    if [ "$n" -le 8 ]; then sat_rate=${!sat_var:-8000}; sat_certs=${!sat_certs_var:-5000}; else sat_rate=${!sat_var:-1500}; sat_certs=${!sat_certs_var:-2000}; fi
    echo "== $bin, $n participants, saturation: $sat_certs certificates ($((sat_certs * 3)) events) offered at $sat_rate events/s" >&2
    offered=saturation
    sat=$(measured_load "$dir" --certificates "$sat_certs" --rate "$sat_rate" --seed "$seed" --timeout 600)
    rss=$(peak_rss_mb "$dir")
    "$kp" testnet down --dir "$dir" >&2
    running=""
    echo "{\"participants\": $n, \"binary\": \"$bin\", \"first_commit_seconds\": $first_commit, \"steady\": [${runs%,}], \"saturation\": $sat, \"peak_rss_mb_per_node\": $rss}"
}

results=""
for n in $sizes; do
    # Run in this shell (not a command substitution), so that the exit trap knows the network.
    if [ -n "$before_bin" ]; then
        measure_network "$before_bin" "$n" > "target/bench-network-$n-before.json"
        measure_network "$after_bin" "$n" > "target/bench-network-$n-after.json"
        results="$results{\"participants\": $n, \"before\": $(cat "target/bench-network-$n-before.json"), \"after\": $(cat "target/bench-network-$n-after.json")},"
    else
        measure_network "$after_bin" "$n" > "target/bench-network-$n.json"
        results="$results$(cat "target/bench-network-$n.json"),"
    fi
done
kp="$after_bin"

# The cost of TLS: the 4-participant overload run (TLS, mutual, as every run above) again on a
# network whose APIs serve plaintext on loopback; the same certificates, rate and seed.
tls_cost="null"
if [ "${KP_BENCH_TLS_COST:-1}" != "0" ]; then
    certs=${KP_BENCH_SATURATION_CERTS_4:-5000}; rate=${KP_BENCH_SATURATION_4:-8000}
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
