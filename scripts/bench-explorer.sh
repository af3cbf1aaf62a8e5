#!/usr/bin/env bash
# The web explorer's pages on a ledger of 1,000,000 events (or $1): the review model built from
# a generated three-year trade, then each page built as the explorer builds it — a whole-model
# computation once per committed height and query, the page from the kept result otherwise.
# Debug build (dependencies and kp-review optimised, the explorer's own code not: its figures
# are upper bounds). Prints JSON and writes it to target/bench-explorer.json.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh debug
cargo build --locked -p kp-node --example explorer_load
out=$(target/debug/examples/explorer_load "${1:-1000000}")
echo "$out" | tee target/bench-explorer.json
