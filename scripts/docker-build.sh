#!/usr/bin/env bash
# Builds the DistKV image (make docker-build): static binaries, then an image FROM scratch.
#   IMAGE   image name (default: distkv:latest)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${IMAGE:-distkv:latest}
TARGET=x86_64-unknown-linux-gnu

echo "== static binaries ($TARGET, +crt-static)"
RUSTFLAGS='-C target-feature=+crt-static' cargo build --release --target "$TARGET" \
    -p distkv-node -p distkv-client --bins

ctx=build/docker
rm -rf "$ctx"
mkdir -p "$ctx/rootfs/usr/local/bin" "$ctx/rootfs/etc/ssl/certs" "$ctx/data"
# Where cargo put them: CARGO_TARGET_DIR when set (as the acceptance checks set it), else target.
out="${CARGO_TARGET_DIR:-target}/$TARGET/release"
cp "$out/distkv-server" "$out/distkv-client" "$ctx/rootfs/usr/local/bin/"
echo "distkv:x:10001:10001:DistKV:/data:/sbin/nologin" >"$ctx/rootfs/etc/passwd"
echo "distkv:x:10001:" >"$ctx/rootfs/etc/group"
roots=/etc/ssl/certs/ca-certificates.crt
if [ -f "$roots" ]; then
    cp "$roots" "$ctx/rootfs/etc/ssl/certs/"
else
    echo "warning: no $roots on this machine; the image has no CA roots" >&2
    : >"$ctx/rootfs/etc/ssl/certs/ca-certificates.crt"
fi
# The binaries must not need a dynamic loader: the image has none.
if file "$ctx/rootfs/usr/local/bin/distkv-server" 2>/dev/null | grep -q "dynamically linked"; then
    echo "distkv-server is dynamically linked; it cannot run FROM scratch" >&2
    exit 1
fi

echo "== docker build -t $IMAGE"
docker build -t "$IMAGE" -f Dockerfile "$ctx"
docker image ls "$IMAGE"
