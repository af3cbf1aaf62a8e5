#!/usr/bin/env bash
# The model checker of the consensus engine (crates/kp-model, stateright), optimised, with debug assertions (the `model` profile).
#   scripts/model-check.sh                the bounded set (CI): every property must hold in every
#                                         configuration, and the broken-lock mutant must fail
#                                         agreement, its shortest counterexample printed
#   scripts/model-check.sh --deep         the deeper set (larger bounds; hours, see docs/consensus.md)
#   scripts/model-check.sh --only NAME    one configuration (--list names them); other kp-model
#                                         flags (--faults, --rounds, --threads, --honest) follow
#   scripts/model-check.sh --broken-lock  only the mutant check
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

mutant() {
  # Same target directory: cargo keeps both builds of kp-consensus, so switching is a relink.
  cargo build --quiet --profile model --locked -p kp-model --features broken-lock
  cp target/model/kp-model target/model/kp-model-broken-lock
  cargo build --quiet --profile model --locked -p kp-model
  echo "model-check: the engine built with the broken locking rule must break agreement"
  if ! target/model/kp-model-broken-lock --only async-3-equivocation --expect-violation agreement; then
    echo "model-check: the broken locking rule was NOT caught" >&2
    exit 1
  fi
  echo "model-check: the broken locking rule was caught"
}

case "${1:-}" in
  --broken-lock)
    mutant ;;
  --deep | --only | --list)
    cargo build --quiet --profile model --locked -p kp-model
    exec target/model/kp-model "$@" ;;
  "")
    cargo build --quiet --profile model --locked -p kp-model
    target/model/kp-model
    mutant ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 2 ;;
esac
