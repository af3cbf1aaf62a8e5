#!/usr/bin/env bash
# Runs the fuzz targets of tests/fuzz (cargo fuzz, libFuzzer, nightly Rust) for a bounded time
# each, over the committed seed corpus copied to a scratch directory (a run writes nothing into
# the repository), and prints the executions of each. Exits non-zero if any target crashes,
# times out or runs out of memory, naming the input and how to reproduce it.
#
#   scripts/fuzz.sh [--seconds N] [--sanitizer none|address] [TARGET...]
#   scripts/fuzz.sh --make-corpus    (rewrites tests/fuzz/corpus/ with examples/make-corpus.rs)
#
# Without TARGET, every target. --seconds: per target (default 15, CI's smoke pass; give more
# for a soak). --sanitizer: none by default (still coverage-guided; the ledger has no unsafe
# code of its own, and the build is quicker), address for AddressSanitizer. Environment:
# KP_FUZZ_RSS_MB (default 2048), KP_FUZZ_TIMEOUT (seconds per input, default 10).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

seconds=15
sanitizer=none
make_corpus=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a number}"; shift 2 ;;
    --sanitizer) sanitizer="${2:?--sanitizer needs none or address}"; shift 2 ;;
    --make-corpus) make_corpus=1; shift ;;
    -h | --help) sed -n '2,13p' "$0"; exit 0 ;;
    -*) echo "fuzz: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
case "$seconds" in '' | *[!0-9]*) echo "fuzz: --seconds takes a whole number" >&2; exit 2 ;; esac

fuzz_dir=tests/fuzz
all_targets=$(awk '/^\[\[bin\]\]/ { getline; gsub(/name = |"/, ""); print }' "$fuzz_dir/Cargo.toml")
if [ ${#targets[@]} -eq 0 ]; then
  read -r -a targets <<<"$(echo $all_targets)"
fi
for t in "${targets[@]}"; do
  grep -qx "$t" <<<"$all_targets" || { echo "fuzz: no target $t (targets: $(echo $all_targets))" >&2; exit 2; }
done

# Nightly Rust: libFuzzer's coverage instrumentation needs it.
if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "fuzz: the nightly Rust toolchain is missing: cargo fuzz needs it." >&2
  echo "fuzz: install it with 'rustup toolchain install nightly --profile minimal', then run this again." >&2
  exit 3
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --version 0.13.2 --locked
fi

# The fuzz crate's Cargo.lock must pin what the root one does (it started as a copy of it).
drift=$(awk '
  FNR == 1 { file++ }
  /^name = / { name = $3 }
  /^version = / && name != "" { if (file == 1) root[name " " $3] = 1; else if (!((name " " $3) in root)) print name " " $3; name = "" }
' Cargo.lock "$fuzz_dir/Cargo.lock" | grep -v '^"\(kp-fuzz\|libfuzzer-sys\|arbitrary\)" ' || true)
if [ -n "$drift" ]; then
  echo "fuzz: $fuzz_dir/Cargo.lock pins versions the root Cargo.lock does not:" >&2
  echo "$drift" | sed 's/^/  /' >&2
  echo "fuzz: refresh it: cp Cargo.lock $fuzz_dir/ && cargo +nightly fetch --manifest-path $fuzz_dir/Cargo.toml" >&2
  exit 2
fi

# RocksDB (reached through kp-audit -> kp-store) links the library compiled once per machine.
source scripts/rocksdb-lib.sh debug

if [ "$make_corpus" = 1 ]; then
  cargo +nightly run --locked --manifest-path "$fuzz_dir/Cargo.toml" --target-dir target/fuzz/corpus \
    --example make-corpus
  exit 0
fi

triple=$(rustc +nightly -vV | awk '/^host:/ { print $2 }')
# One target directory per sanitizer (their flags differ: one would rebuild the other's).
target_dir="$PWD/target/fuzz/$sanitizer"
bin_dir="$target_dir/$triple/release"
start=$(date +%s)
# cargo fuzz has no --locked: fetching with it first refuses a lock file that needs changing.
cargo +nightly fetch --locked --manifest-path "$fuzz_dir/Cargo.toml"
# Release with debug assertions (and so overflow checks), as cargo fuzz builds by default.
cargo +nightly fuzz build --fuzz-dir "$fuzz_dir" --target-dir "$target_dir" --sanitizer "$sanitizer" \
  --debug-assertions
echo "fuzz: built in $(( $(date +%s) - start )) s (sanitizer $sanitizer)"

# The scratch directory: in memory when the machine has /dev/shm (the key file target writes
# and syncs a file per input).
tmp_base="${TMPDIR:-/tmp}"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then tmp_base=/dev/shm; fi
scratch=$(mktemp -d "$tmp_base/kp-fuzz.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
export KP_FUZZ_TMP="$scratch/tmp"
mkdir -p "$KP_FUZZ_TMP"
failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$scratch/corpus/$t"
  artifacts="$scratch/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  cp "$fuzz_dir/corpus/$t/"* "$corpus/" 2>/dev/null || true
  log="$scratch/$t.log"
  status=0
  "$bin_dir/$t" -max_total_time="$seconds" -rss_limit_mb="${KP_FUZZ_RSS_MB:-2048}" \
    -timeout="${KP_FUZZ_TIMEOUT:-10}" -print_final_stats=1 -artifact_prefix="$artifacts/" \
    "$corpus" >"$log" 2>&1 || status=$?
  execs=$(awk -F': *' '/^stat::number_of_executed_units:/ { print $2 }' "$log" | tail -n 1)
  if [ -z "$execs" ]; then
    execs=$(sed -n 's/^#\([0-9]*\)[[:space:]]*DONE.*/\1/p' "$log" | tail -n 1)
  fi
  summary+=("$(printf '%-16s %10s executions in %s s' "$t" "${execs:-?}" "$seconds")")
  echo "fuzz: ${summary[-1]}"
  found=$(find "$artifacts" -type f ! -name 'slow-unit-*' | sort)
  if [ "$status" -ne 0 ] || [ -n "$found" ]; then
    failed+=("$t")
    keep="$PWD/target/fuzz/artifacts/$t"
    mkdir -p "$keep"
    echo "fuzz: $t FAILED (exit status $status); the end of its log:" >&2
    tail -n 40 "$log" >&2
    for f in $found; do
      cp "$f" "$keep/"
      k="$keep/$(basename "$f")"
      echo "fuzz: input: $k ($(wc -c <"$f") bytes; first bytes: $(head -c 64 "$f" | od -An -tx1 | tr -d '\n'))" >&2
      echo "fuzz: reproduce: $bin_dir/$t $k" >&2
      echo "fuzz:        or: cargo +nightly fuzz run --fuzz-dir $fuzz_dir --target-dir $target_dir --sanitizer $sanitizer $t $k" >&2
    done
  fi
done
echo "fuzz: summary (sanitizer $sanitizer, $seconds s per target):"
printf '  %s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "fuzz: ${#targets[@]} targets ran without a crash"
