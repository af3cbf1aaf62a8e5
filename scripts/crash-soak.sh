#!/usr/bin/env bash
# Crash-safety soak: the SIGKILL test of kp-store with more kill points than CI's 100.
#   bash scripts/crash-soak.sh [KILLS] [SEED]      (default 1000 kills, seed from the clock)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >&2
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh release
export KP_STORE_CRASH_KILLS="${1:-1000}"
[ -n "${2:-}" ] && export KP_STORE_CRASH_SEED="$2"
cargo test --locked --release -p kp-store --test crash -- --nocapture --test-threads=1 sigkill_at_random_moments
