#!/usr/bin/env bash
# Storage benchmark: appends a 1,000,000-event ledger (59 participants, 100-event blocks, a
# sync per block) to RocksDB, then measures custody lookups, bytes on disk and peak RSS.
# Prints JSON and keeps it in target/bench-store.json. Environment: KP_BENCH_EVENTS,
# KP_BENCH_PARTICIPANTS, KP_BENCH_EVENTS_PER_BLOCK, KP_BENCH_DIR (see benches/store.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
export PATH="$HOME/.cargo/bin:$PATH"
# KP_ROCKSDB_LIB=debug links the unoptimised library tests use (no 20-minute optimised build).
source scripts/rocksdb-lib.sh "${KP_ROCKSDB_LIB:-release}"
cargo bench --locked -p kp-store --bench store | tee target/bench-store.json
