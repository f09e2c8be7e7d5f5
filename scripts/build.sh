#!/usr/bin/env bash
# Builds the release binaries into ./build (make build): distkv-server, distkv-client,
# distkv-bench, engine-bench. With STATIC=1, static binaries (as the Docker image uses).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
out=${CARGO_TARGET_DIR:-target}
mkdir -p "$BUILD_DIR"
if [ "${STATIC:-0}" = 1 ]; then
    target=x86_64-unknown-linux-gnu
    RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$target" \
        -p distkv-node -p distkv-client --bins
    cp "$out/$target/release/distkv-server" "$out/$target/release/distkv-client" "$BUILD_DIR/"
else
    cargo build --release --workspace --bins
    cp "$out/release/distkv-server" "$out/release/distkv-client" "$out/release/distkv-bench" \
        "$out/release/engine-bench" "$BUILD_DIR/"
fi
ls -l "$BUILD_DIR"
