#!/usr/bin/env bash
# Starts a local 3-node DistKV cluster on localhost:8080-8082 (make dev-cluster).
# Data and logs go under $CLUSTER_DIR (default ./data/dev-cluster): nodeN/ and nodeN.log, and
# each node's PID in nodeN.pid, which stop-cluster.sh uses (never a process name).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN_DIR=${BIN_DIR:-build}
CLUSTER_DIR=${CLUSTER_DIR:-data/dev-cluster}
BASE_PORT=${BASE_PORT:-8080}
NODES=${NODES:-3}
mkdir -p "$CLUSTER_DIR"

if [ ! -x "$BIN_DIR/distkv-server" ]; then
    echo "no $BIN_DIR/distkv-server: run make build first" >&2
    exit 1
fi

seed="localhost:$BASE_PORT"
for i in $(seq 1 "$NODES"); do
    port=$((BASE_PORT + i - 1))
    pidfile="$CLUSTER_DIR/node$i.pid"
    if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
        echo "node$i already running (pid $(cat "$pidfile"))"
        continue
    fi
    seeds=""
    [ "$i" -gt 1 ] && seeds="-seed-nodes=$seed"
    "$BIN_DIR/distkv-server" -node-id="node$i" -address="localhost:$port" \
        -data-dir="$CLUSTER_DIR/node$i" $seeds "$@" >>"$CLUSTER_DIR/node$i.log" 2>&1 &
    echo $! >"$pidfile"
    echo "node$i: localhost:$port (pid $!, log $CLUSTER_DIR/node$i.log)"
done

# Wait until every node answers and sees every member alive (joined, heartbeats heard).
deadline=$((SECONDS + 30))
for i in $(seq 1 "$NODES"); do
    port=$((BASE_PORT + i - 1))
    until "$BIN_DIR/distkv-client" -server="localhost:$port" -timeout=1s status 2>/dev/null |
        grep -q "Health: $NODES total nodes, $NODES alive"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "node$i did not join within 30s; see $CLUSTER_DIR/node$i.log" >&2
            exit 1
        fi
        sleep 0.2
    done
done
echo "cluster of $NODES nodes is up: try $BIN_DIR/distkv-client -server=localhost:$BASE_PORT put hello world"
