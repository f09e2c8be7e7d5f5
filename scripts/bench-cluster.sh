#!/usr/bin/env bash
# Measures DistKV with distkv-bench on this machine: one node (N=1), then a 3-node cluster
# (N=3, R=W=2). Each setup runs a mixed workload (50 % reads), then reads only, then writes
# only: 50 concurrent clients for $DURATION each (default 20s), 100-byte values over 10,000
# keys, QUORUM, -wal-sync=$WAL_SYNC (default always).
#
# For every run it prints ops/s, server CPU per operation (the nodes' CPU time, user and
# system, read from /proc before and after, over the operations completed), read and write
# p50/p99/p99.9 in ms, and the most threads any node had at the end of the run.
#
# Nodes run from $BIN_DIR (default ./build) in a temporary directory and are stopped by PID
# afterwards, also on failure. BENCH_DIR may name another directory for distkv-bench and
# distkv-client (to drive old servers with a new load generator). Extra arguments go to every
# distkv-bench run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build}
BENCH_DIR=${BENCH_DIR:-$BIN_DIR}
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
        "$BENCH_DIR/distkv-client" -server="127.0.0.1:$1" -timeout=1s status 2>/dev/null | grep -q "Health: $2 total" && return 0
        sleep 0.2
    done
    echo "node on port $1 did not come up; logs in $dir" >&2; return 1
}
cpu_ticks() { # pids... -> total utime+stime ticks
    local t=0 p f
    for p in "$@"; do f=($(sed 's/^.*) //' "/proc/$p/stat")); t=$((t + f[11] + f[12])); done
    echo "$t"
}
max_threads() { # pids...
    local m=0 p n
    for p in "$@"; do n=$(awk '/^Threads:/{print $2}' "/proc/$p/status"); ((n > m)) && m=$n; done
    echo "$m"
}
printf '%-28s %9s %10s %22s %22s %8s\n' "run" "ops/s" "cpu/op µs" "read p50/p99/p99.9 ms" "write p50/p99/p99.9 ms" "threads"
run() { # label servers bench-args...
    local label=$1 servers=$2; shift 2
    local before after threads json
    before=$(cpu_ticks "${pids[@]}")
    json=$("$BENCH_DIR/distkv-bench" -server="$servers" -concurrency=50 -keys=10000 -value-size=100 \
        -duration="$DURATION" -warmup=false -o json "$@" "${EXTRA[@]}")
    after=$(cpu_ticks "${pids[@]}")
    threads=$(max_threads "${pids[@]}")
    echo "$json" >>"$dir/results.jsonl"
    LABEL="$label" TICKS=$((after - before)) HZ=$(getconf CLK_TCK) THREADS="$threads" \
        python3 -c '
import json, os, sys
r = json.loads(sys.stdin.read())
ops = r["total_ops"]
cpu = int(os.environ["TICKS"]) / int(os.environ["HZ"])
def lat(side):
    s = r.get(side) or {}
    if not s.get("ok"):
        return "-"
    keys = ["p50_us", "p99_us", "p999_us"]
    return "/".join(f"{s[k] / 1000:.1f}" for k in keys if k in s)
errors = ""
if r.get("errors"):
    errors = "  (%d errors, first: %s)" % (r["errors"], r.get("first_error"))
row = (os.environ["LABEL"], r["ops_per_sec"], cpu * 1e6 / max(ops, 1), lat("reads"), lat("writes"), os.environ["THREADS"], errors)
print("%-28s %9.0f %10.1f %22s %22s %8s%s" % row)
' <<<"$json"
}
EXTRA=("$@")

warm() { # servers
    "$BENCH_DIR/distkv-bench" -server="$1" -concurrency=50 -keys=10000 -value-size=100 -read-ratio=0 \
        -duration=1s -warmup=true -o json "${EXTRA[@]}" >/dev/null
}
setup_runs() { # label servers
    local label=$1 servers=$2
    warm "$servers"
    run "$label mixed" "$servers" -read-ratio=0.5
    run "$label reads only" "$servers" -read-ratio=1
    run "$label writes only" "$servers" -read-ratio=0
}

p=$(port); start single "$p" "-replicas=1 -read-quorum=1 -write-quorum=1"; wait_up "$p" 1
setup_runs "1 node" "127.0.0.1:$p"
kill -TERM "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()

p1=$(port); p2=$(port); p3=$(port); q="-replicas=3 -read-quorum=2 -write-quorum=2"
start n1 "$p1" "$q"; start n2 "$p2" "$q" "127.0.0.1:$p1"; start n3 "$p3" "$q" "127.0.0.1:$p1"
wait_up "$p1" 3; wait_up "$p2" 3; wait_up "$p3" 3
setup_runs "3 nodes" "127.0.0.1:$p1,127.0.0.1:$p2,127.0.0.1:$p3"
echo "(wal-sync=$WAL_SYNC, $DURATION a run; cpu/op sums every node's CPU; raw reports: distkv-bench -o json)"
