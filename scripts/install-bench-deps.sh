#!/usr/bin/env bash
# Installs the Debian packages a benchmark needs. Run as root (or with sudo).
#
# `install-bench-deps.sh` (or `engine`): what `engine-bench --features rocksdb` needs to link
# RocksDB from the system instead of compiling it (over 20 minutes on a 2-core machine):
#   librocksdb-dev  Debian's RocksDB 7.8.3 (shared library and headers)
#   libclang-dev    for bindgen in librocksdb-sys's build script
# `install-bench-deps.sh peers`: the peers of scripts/bench-peers.sh:
#   redis-server       Redis 7 (and redis-cli, through redis-tools)
#   etcd-server        etcd 3.4
#   protobuf-compiler  protoc, for distkv-bench's etcd feature (etcd-client compiles protos)
#   libprotobuf-dev    protobuf's well-known types (google/protobuf/*.proto) that etcd's protos
#                      import: only recommended by protobuf-compiler, so not installed with it here
set -euo pipefail

case "${1:-engine}" in
    engine) packages=(librocksdb-dev libclang-dev) ;;
    peers) packages=(redis-server etcd-server protobuf-compiler libprotobuf-dev) ;;
    *) echo "usage: $0 [engine|peers]" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "bench dependencies already installed: ${packages[*]}"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
