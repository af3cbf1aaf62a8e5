#!/usr/bin/env bash
# Architecture checks: the pure crates (domain, crypto, rules, consensus) must not depend, even
# transitively, on an async runtime, the network, the disk engine or protobuf (their tests may:
# dev-dependencies are not counted); and only kp-store depends on RocksDB directly.
set -euo pipefail
cd "$(dirname "$0")/.."
forbidden='^(tokio|libp2p|rocksdb|librocksdb-sys|prost|tonic|hyper)( |$)'
status=0
for crate in kp-domain kp-crypto kp-rules kp-consensus; do
  [ -d "crates/$crate" ] || continue
  bad=$(cargo tree --locked -p "$crate" -e normal --prefix none --format '{p}' 2>/dev/null | grep -E "$forbidden" | sort -u || true)
  if [ -n "$bad" ]; then
    echo "check-deps: $crate must not depend on:" >&2
    echo "$bad" | sed 's/^/  /' >&2
    status=1
  else
    echo "check-deps: $crate is free of tokio, libp2p, rocksdb and prost"
  fi
done
# The node's core is driven by the node's runtime and by the simulator: it reaches the disk
# through kp-store, but has no async runtime and no network of its own.
bad=$(cargo tree --locked -p kp-core -e normal --prefix none --format '{p}' 2>/dev/null | grep -E '^(tokio|libp2p|tonic|hyper|axum)( |$)' | sort -u || true)
if [ -n "$bad" ]; then
  echo "check-deps: kp-core must not depend on:" >&2
  echo "$bad" | sed 's/^/  /' >&2
  status=1
else
  echo "check-deps: kp-core is free of tokio, libp2p, tonic and hyper"
fi
# Only the storage crate talks to RocksDB directly; the others reach the disk through it.
for dir in crates/*/; do
  crate=$(basename "$dir")
  [ "$crate" = kp-store ] && continue
  direct=$(cargo tree --locked -p "$crate" -e normal --depth 1 --prefix none --format '{p}' 2>/dev/null \
    | grep -E '^(rocksdb|librocksdb-sys) ' || true)
  if [ -n "$direct" ]; then
    echo "check-deps: $crate depends on RocksDB directly; only kp-store may" >&2
    status=1
  fi
done
echo "check-deps: kp-store is the only crate on RocksDB"
exit $status
