#!/usr/bin/env bash
# Sets up what is missing, then runs every check and test of the workspace: formatting, the
# architecture check, clippy (warnings are errors) and the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
# A clean clone gains nothing from incremental compilation, and its caches take gigabytes of a
# CI disk; set CARGO_INCREMENTAL=1 to keep them while iterating.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
df -h . | awk 'NR == 2 { print "test.sh: " $4 " free on the disk holding the checkout" }'
t_rocksdb=$SECONDS
source scripts/rocksdb-lib.sh debug
echo "test.sh: RocksDB library ready after $((SECONDS - t_rocksdb)) s" >&2
# libfaketime, for the test of a node whose clock is wrong (tests/tests/clock.rs, which says it
# is skipped if this fails).
if ! compgen -G '/usr/lib/*/faketime/libfaketimeMT.so.1' >/dev/null; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime >/dev/null; } ||
    echo "test.sh: could not install faketime; the wrong-clock test of real nodes will be skipped" >&2
fi
# Debian's Chromium and its WebDriver, for the web explorer's browser test (tests/tests/explorer.rs
# requires them when KP_REQUIRE_BROWSER is set; nothing downloads a browser build).
if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null; } ||
    echo "test.sh: could not install chromium and chromium-driver; the explorer's browser test will fail" >&2
fi
export KP_REQUIRE_BROWSER=1
# Python's grpcio, for the test of a client generated from proto/ alone (tests/tests/access.rs
# requires it when KP_REQUIRE_PYTHON is set).
if [ ! -x target/py/bin/python ] || ! target/py/bin/python -c 'import grpc, grpc_tools, cryptography' 2>/dev/null; then
  python3 -m venv target/py
  target/py/bin/pip install -q --disable-pip-version-check grpcio grpcio-tools cryptography
fi
export KP_PYTHON="$PWD/target/py/bin/python" KP_REQUIRE_PYTHON=1
# Each step says how long it took (the whole run must stay well inside CI's time).
timed() { local t=$SECONDS; "$@"; echo "test.sh: '$*' took $((SECONDS - t)) s" >&2; }
timed cargo fmt --all -- --check
timed bash scripts/check-deps.sh
timed cargo clippy --locked --workspace --all-targets -- -D warnings
timed cargo test --locked --workspace
# The consensus engine model-checked within bounds (states and time printed), and the
# broken-lock mutant caught with its shortest counterexample: scripts/model-check.sh.
timed bash scripts/model-check.sh
# A smoke pass of every fuzz target (nightly Rust, 15 s each, no sanitizer; a soak takes
# --seconds): scripts/fuzz.sh.
timed bash scripts/fuzz.sh
echo "test.sh: target/ holds $(du -sh target | cut -f1)"
