#!/usr/bin/env bash
# Measures DistKV with distkv-bench: one node (N=1), then a 3-node cluster (N=3, R=W=2), each
# with 50 concurrent clients for $DURATION (default 20s), 50/50 reads and writes, 100-byte
# values over 10,000 keys. Nodes run from ./build in a temporary directory and are stopped by
# PID afterwards, also on failure. Pass extra distkv-bench flags as arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build}
DURATION=${DURATION:-20s}
WAL_SYNC=${WAL_SYNC:-always}
dir=$(mktemp -d -t distkv-bench.XXXX)
pids=()
cleanup() { for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
start() { # id port quorum-flags seed
    local id=$1 p=$2 q=$3 seed=${4:-}
    "$BIN_DIR/distkv-server" -node-id="$id" -address="127.0.0.1:$p" -data-dir="$dir/$id" $q \
        -wal-sync="$WAL_SYNC" ${seed:+-seed-nodes=$seed} -log-level=warn >"$dir/$id.log" 2>&1 &
    pids+=($!)
}
wait_up() { # port nodes
    for _ in $(seq 1 100); do
        "$BIN_DIR/distkv-client" -server="127.0.0.1:$1" -timeout=1s status 2>/dev/null | grep -q "Health: $2 total" && return 0
        sleep 0.2
    done
    echo "node on port $1 did not come up; logs in $dir" >&2; return 1
}
bench() { "$BIN_DIR/distkv-bench" -concurrency=50 -keys=10000 -value-size=100 -read-ratio=0.5 -duration="$DURATION" "$@"; }

echo "== one node (N=1, R=W=1), wal-sync=$WAL_SYNC"
p=$(port); start single "$p" "-replicas=1 -read-quorum=1 -write-quorum=1"; wait_up "$p" 1
bench -server="127.0.0.1:$p" "$@"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

echo "== three nodes (N=3, R=W=2), wal-sync=$WAL_SYNC, clients spread over the nodes"
p1=$(port); p2=$(port); p3=$(port); q="-replicas=3 -read-quorum=2 -write-quorum=2"
start n1 "$p1" "$q"; start n2 "$p2" "$q" "127.0.0.1:$p1"; start n3 "$p3" "$q" "127.0.0.1:$p1"
wait_up "$p1" 3; wait_up "$p2" 3; wait_up "$p3" 3
bench -server="127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3" "$@"
