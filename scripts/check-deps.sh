#!/usr/bin/env bash
# Architecture check: the pure crates (domain, crypto, rules, and the consensus crate when it
# exists) must not depend, even transitively, on an async runtime, the network, the disk
# engine or protobuf. Their tests may (dev-dependencies are not counted).
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
exit $status
