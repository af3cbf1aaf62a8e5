#!/usr/bin/env bash
# Audit benchmark: generates a 1,000,000-event ledger (59 participants, 100-event blocks),
# then measures in one run the raw batch Ed25519 verification throughput of this machine's
# cores, the full audit of the ledger's export file against it, and a proof bundle's size and
# verification time. Prints JSON and keeps it in target/bench-audit.json. Environment:
# KP_BENCH_EVENTS, KP_BENCH_PARTICIPANTS, KP_BENCH_EVENTS_PER_BLOCK (see benches/audit.rs).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
export PATH="$HOME/.cargo/bin:$PATH"
# KP_ROCKSDB_LIB=debug links the unoptimised library tests use (no 20-minute optimised build).
source scripts/rocksdb-lib.sh "${KP_ROCKSDB_LIB:-release}"
cargo bench --locked -p kp-audit --bench audit | tee target/bench-audit.json
