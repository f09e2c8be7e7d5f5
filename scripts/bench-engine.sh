#!/usr/bin/env bash
# Runs the engine benchmark (distkv-lsm vs fjall vs RocksDB) in release mode, linking
# Debian's librocksdb (install it with scripts/install-bench-deps.sh). Arguments pass
# through to engine-bench:
#   scripts/bench-engine.sh --quick
#   scripts/bench-engine.sh --full --json bench.json
#   scripts/bench-engine.sh --quick --num 200000 --workloads fillrandom,readrandom
# Set BENCH_FEATURES to change the cargo features (default: rocksdb, plus the default
# distkv feature), e.g. BENCH_FEATURES="" for distkv and fjall only.
set -euo pipefail

cd "$(dirname "$0")/.."

lib_dir="${ROCKSDB_LIB_DIR:-/usr/lib/x86_64-linux-gnu}"
features="${BENCH_FEATURES-rocksdb}"

if [[ ",$features," == *",rocksdb,"* ]]; then
    if ! ls "$lib_dir"/librocksdb.so* >/dev/null 2>&1; then
        echo "librocksdb not found in $lib_dir: run scripts/install-bench-deps.sh" >&2
        echo "(refusing to let librocksdb-sys compile RocksDB from source)" >&2
        exit 1
    fi
    # librocksdb-sys links this directory's librocksdb.so instead of building RocksDB;
    # RocksDB's own compression libraries come in through the shared library. Snappy is
    # only needed by the crate's `snappy` feature, which stays off.
    export ROCKSDB_LIB_DIR="$lib_dir"
    export SNAPPY_LIB_DIR="${SNAPPY_LIB_DIR:-$lib_dir}"
fi

exec cargo run --release -p distkv-lsm-bench --features "$features" -- "$@"
