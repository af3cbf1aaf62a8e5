# Sourced by the other scripts: `source scripts/rocksdb-lib.sh debug|release`.
#
# The rocksdb crate compiles RocksDB's C++ sources in its build script, and cargo reruns that
# build for every profile, for `check` (clippy) apart from `build`, and for every package
# selection whose features differ: about 20 minutes each on two cores. Instead, the C++
# library is compiled once per machine and kind — `debug` (unoptimised, for tests and the
# demo) or `release` (optimised, for benchmarks) — kept under target/rocksdb/, and every cargo
# command links it (ROCKSDB_LIB_DIR with ROCKSDB_STATIC, which the build script honours).
_kind="${1:-debug}"
_ver=$(awk '/^name = "librocksdb-sys"$/ { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)
_dir="$PWD/target/rocksdb/${_ver}-${_kind}"
if [ ! -f "$_dir/librocksdb.a" ]; then
  case "$_kind" in
    debug) _profile=dev; _out=debug ;;
    release) _profile=release; _out=release ;;
    *) echo "rocksdb-lib: unknown kind $_kind (debug or release)" >&2; return 1 ;;
  esac
  echo "rocksdb-lib: compiling RocksDB ${_ver} ($_kind) once for this machine; this takes a while" >&2
  env -u ROCKSDB_LIB_DIR -u ROCKSDB_STATIC ROCKSDB_COMPILE=1 \
    cargo build --locked --profile "$_profile" -p kp-store --lib >&2
  _lib=""
  for _f in target/"$_out"/build/librocksdb-sys-*/out/librocksdb.a; do
    if [ -z "$_lib" ] || [ "$_f" -nt "$_lib" ]; then _lib="$_f"; fi
  done
  if [ ! -f "$_lib" ]; then
    echo "rocksdb-lib: the RocksDB build left no librocksdb.a under target/$_out/build" >&2
    return 1
  fi
  mkdir -p "$_dir"
  cp "$_lib" "$_dir/librocksdb.a.tmp"
  mv "$_dir/librocksdb.a.tmp" "$_dir/librocksdb.a"
  # The object files the build left beside the library are not needed again (hundreds of MB).
  rm -rf "$(dirname "$_lib")"
fi
export ROCKSDB_LIB_DIR="$_dir" ROCKSDB_STATIC=1
unset _kind _ver _dir _profile _out _lib _f
