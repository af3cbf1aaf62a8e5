#!/usr/bin/env bash
# The main job: sets up what is missing, builds `kpledger`, generates a 59-participant network
# (genesis and fresh keys) and runs the sample custody flow through the rules engine: Botswana
# issues and seals a shipment to the European Union, which confirms receipt; one event is refused
# with its reason; the certificate's custody history is printed.
# (Until the participant node exists, the flow runs in-process; the node issue replaces this
# with a live local network.)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh debug
cargo build --locked --release -p kpledger
dir="target/demo-network"
rm -rf "$dir"
./target/release/kpledger testnet init --participants 59 --dir "$dir"
echo
./target/release/kpledger demo --dir "$dir"
