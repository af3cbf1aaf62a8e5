#!/usr/bin/env bash
# Replays the KP's own decision cases (node-config/scenarios/*.toml) on live local networks of
# real node processes, one network per scenario, each outcome checked and printed.
#   scripts/scenarios.sh                 every scenario, on its compressed participant set (CI runs
#                                        these through tests/tests/scenarios.rs)
#   scripts/scenarios.sh --full          every scenario on all 59 registry participants (60 with
#                                        Uzbekistan admitted): 61+ node processes, about a minute
#                                        to start each network on 2 cores
#   scripts/scenarios.sh FILE... [--full]  only these
# Networks are made under target/scenarios/ and brought down after each run, even on failure
# (a failed run keeps its directory, with the nodes' logs).
set -euo pipefail
cd "$(dirname "$0")/.."
full=()
files=()
for a in "$@"; do
  case "$a" in
    --full) full=(--full) ;;
    -h|--help) sed -n 2,11p "$0"; exit 0 ;;
    *) files+=("$a") ;;
  esac
done
[ ${#files[@]} -gt 0 ] || files=(node-config/scenarios/*.toml)
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
source scripts/rocksdb-lib.sh debug
cargo build --locked -p kpledger
mkdir -p target/scenarios
failed=()
port=24000
for f in "${files[@]}"; do
  name=$(basename "$f" .toml)
  dir="target/scenarios/$name"
  rm -rf "$dir"
  echo "=== $f"
  if ! target/debug/kpledger scenario run "$f" --dir "$dir" --base-port "$port" "${full[@]}"; then
    failed+=("$name")
    echo "scenarios.sh: $name FAILED (its network's directory, with the logs, is kept in $dir)" >&2
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "scenarios.sh: ${#failed[@]} of ${#files[@]} failed: ${failed[*]}" >&2
  exit 1
fi
echo "scenarios.sh: all ${#files[@]} scenarios passed"
