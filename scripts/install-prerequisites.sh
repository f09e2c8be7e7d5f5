#!/usr/bin/env bash
# Installs what building and testing DistKV needs beyond the Rust toolchain, on Debian or
# Ubuntu (run as root, or with sudo available). Everything is optional but `make`:
#   make, gcc          building (gcc for the C parts of some crates)
#   openssl            scripts/generate-certs.sh
#   iproute2           the partition test (network namespaces; needs root)
#   python3, file      scripts/test-docker.sh
#   docker.io, docker-compose   the image and the compose cluster (make test-docker)
#   librocksdb-dev, libclang-dev   the RocksDB peer of the engine benchmark (scripts/install-bench-deps.sh)
set -euo pipefail
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
command -v apt-get >/dev/null 2>&1 || {
    echo "install-prerequisites.sh knows apt-get only; install make, gcc, openssl, iproute2, python3, file and Docker by hand" >&2
    exit 1
}
$sudo apt-get update -qq
$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq make gcc openssl iproute2 python3 file
if [ "${WITH_DOCKER:-0}" = 1 ]; then
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose
fi
command -v cargo >/dev/null 2>&1 || echo "note: no cargo: install the Rust toolchain from https://rustup.rs" >&2
echo "prerequisites installed"
