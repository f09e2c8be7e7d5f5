#!/usr/bin/env bash
# Stops the local cluster started by dev-cluster.sh, by the PIDs it recorded: SIGTERM, then
# SIGKILL after 15 seconds.
set -uo pipefail
cd "$(dirname "$0")/.."
CLUSTER_DIR=${CLUSTER_DIR:-data/dev-cluster}
shopt -s nullglob
for pidfile in "$CLUSTER_DIR"/node*.pid; do
    pid=$(cat "$pidfile")
    name=$(basename "$pidfile" .pid)
    if kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid"
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$pid" 2>/dev/null; then
            echo "$name (pid $pid) ignored SIGTERM; killing"
            kill -KILL "$pid"
        fi
        echo "$name stopped"
    fi
    rm -f "$pidfile"
done
