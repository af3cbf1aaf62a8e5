#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test of the workspace: formatting, the
# architecture check, clippy (warnings are errors) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh debug
cargo fmt --all -- --check
bash scripts/check-deps.sh
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo test --locked --workspace
