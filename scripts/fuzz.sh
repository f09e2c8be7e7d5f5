#!/usr/bin/env bash
# Fuzzes every decoder of bytes DistKV reads from disk or the network: each target in
# fuzz/fuzz_targets (one per `fuzzing` entry point of distkv-lsm, distkv-cluster and
# distkv-node) runs under libFuzzer for $FUZZ_SECONDS (default 60) from its checked-in corpus
# (fuzz/corpus/<target>), with AddressSanitizer and debug assertions (integer overflow
# panics), and with any single allocation over $FUZZ_MALLOC_MB (default 128) counted as a
# crash: a decoder must not allocate what a length in its input claims.
#
# FUZZ_TARGETS picks targets (default: all). New inputs that reach new code are added to
# the corpus directories; `cargo +nightly fuzz cmin <target>` shrinks a directory before it is
# checked in. A crash leaves its input in fuzz/artifacts/<target>/ and fails the run; `cargo
# test` replays every corpus file on stable, so a fixed crash stays fixed once its input is in
# the corpus.
#
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed from crates.io when missing).
# Prints, per target, the executions run, the corpus size and the result.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${FUZZ_SECONDS:-60}
malloc_mb=${FUZZ_MALLOC_MB:-128}
if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "make fuzz needs the nightly toolchain: rustup toolchain install nightly" >&2
    exit 1
fi
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
cargo +nightly fuzz build -O -a
targets=${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}
log=$(mktemp -d -t distkv-fuzz.XXXX)
trap 'rm -rf "$log"' EXIT
failed=()
printf '%-14s %12s %8s  %s\n' target executions corpus result
for t in $targets; do
    mkdir -p "corpus/$t"
    if cargo +nightly fuzz run -O -a "$t" "corpus/$t" -- -max_total_time="$seconds" \
        -malloc_limit_mb="$malloc_mb" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$log/$t" 2>&1; then
        result=clean
    else
        result="FAILED (log: fuzz/fuzz-$t.log, input in fuzz/artifacts/$t/)"
        cp "$log/$t" "fuzz-$t.log"
        failed+=("$t")
    fi
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log/$t" | grep -o '[0-9]*$' || echo '?')
    printf '%-14s %12s %8s  %s\n' "$t" "$runs" "$(find "corpus/$t" -type f | wc -l)" "$result"
done
echo "($seconds s a target)"
if ((${#failed[@]})); then
    echo "crashes in: ${failed[*]}" >&2
    exit 1
fi
