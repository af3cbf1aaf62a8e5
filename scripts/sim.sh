#!/usr/bin/env bash
# The consensus simulator (crates/kp-sim), in release mode.
#   scripts/sim.sh --seed S --nodes N [--kind K] [--verbose]   rerun one seed (K: faults,
#       governance, offline, flood, pool-flood, disk-failure; the failing run's line names it)
#   scripts/sim.sh --seeds N [--start S] [--nodes 4,7,19,59]      soak: N seeded runs
#   scripts/sim.sh --broken-lock                                   the CI seed set against an
#       engine built with a deliberately broken locking rule: the agreement check must fail
#   scripts/sim.sh --bench                                         cost per block, 4 to 59 nodes
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
# The simulator drives the node's core, whose store links RocksDB (never used here: its disks
# are in memory). The unoptimised library compiled once per machine is linked, release or not.
source scripts/rocksdb-lib.sh debug
case "${1:-}" in
  --seed)
    exec cargo run --quiet --release --locked -p kp-sim -- run "$@" ;;
  --seeds)
    exec cargo run --quiet --release --locked -p kp-sim -- soak "$@" ;;
  --bench)
    shift
    exec cargo run --quiet --release --locked -p kp-sim -- bench "$@" ;;
  --broken-lock)
    # The same seeds as crates/kp-sim/tests/ci.rs; success here means the checks caught it.
    cargo build --quiet --release --locked -p kp-sim --features broken-lock
    bin=target/release/kp-sim
    found=0
    for set in "4 0 110" "7 1000 100" "19 2000 60" "59 3000 30"; do
      read -r n start count <<<"$set"
      out=$("$bin" soak --nodes "$n" --start "$start" --seeds "$count" || true)
      hits=$(grep -c "agreement:" <<<"$out" || true)
      echo "broken lock, $n nodes, seeds $start..$((start + count)): $hits agreement violations"
      grep -m 3 "agreement:" <<<"$out" || true
      found=$((found + hits))
    done
    # Rebuild the honest engine so that later release runs do not use the mutant.
    cargo build --quiet --release --locked -p kp-sim
    if [ "$found" -eq 0 ]; then
      echo "sim: the broken locking rule was NOT caught" >&2
      exit 1
    fi
    echo "sim: the broken locking rule was caught ($found agreement violations)" ;;
  *)
    sed -n '2,8p' "$0" >&2
    exit 2 ;;
esac
