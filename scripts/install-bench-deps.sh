#!/usr/bin/env bash
# Installs what `engine-bench --features rocksdb` needs to link RocksDB from the system
# instead of compiling it (which takes over 20 minutes on a 2-core machine):
#   librocksdb-dev  Debian's RocksDB 7.8.3 (shared library and headers)
#   libclang-dev    for bindgen in librocksdb-sys's build script
# Without the rocksdb feature nothing here is needed. Run as root (or with sudo).
set -euo pipefail

packages=(librocksdb-dev libclang-dev)

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
