#!/usr/bin/env bash
# DistKV beside Redis and etcd, driven by the same load generator (distkv-bench, as YCSB
# drives its bindings) on this machine, in one run:
#
#   1. one DistKV node (N=1, -wal-sync=$WAL_SYNC) and one redis-server (appendonly yes,
#      appendfsync everysec), mixed load (50 % reads);
#   2. three DistKV nodes (N=3, R=W=2, -wal-sync=$WAL_SYNC) and a 3-member etcd cluster on
#      loopback, writes only (every write durable on a quorum);
#
# each 50 concurrent clients for $DURATION (default 20s), 100-byte values over 10,000 keys
# written first. For every run: ops/s, server CPU per operation (the servers' CPU time from
# /proc over the operations completed), p50/p99/p99.9 and threads; then the ratios DistKV ÷
# Redis and DistKV ÷ etcd. (Issue 8's goals: at least 0.5× Redis's ops/s on one node, at
# least 10× etcd's durable writes on three.)
#
# Installs redis-server, etcd-server, protobuf-compiler and libprotobuf-dev when missing (Debian; root or
# sudo) and builds distkv-bench with its etcd feature. A peer that cannot be installed or
# started is skipped with a message. Servers listen on free loopback ports, in a temporary
# directory, and are stopped on exit. Extra arguments go to every distkv-bench run.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-target/release}
BENCH_DIR=${BENCH_DIR:-$BIN_DIR}
DURATION=${DURATION:-20s}
WAL_SYNC=${WAL_SYNC:-always}
EXTRA=("$@")

if ! scripts/install-bench-deps.sh peers >/dev/null 2>&1; then
    echo "bench-peers: could not install redis-server, etcd-server, protobuf-compiler or libprotobuf-dev" \
        "(scripts/install-bench-deps.sh peers); the peers missing below are skipped" >&2
fi
cargo build --release --workspace --bins
etcd_bench=0
if command -v protoc >/dev/null; then
    cargo build --release -p distkv-client --bin distkv-bench --features etcd && etcd_bench=1
fi
source scripts/lib/bench.sh
header

# 1. One node each, mixed.
one_node single
warm "$servers"
run "distkv 1 node mixed" "$servers" -read-ratio=0.5
stop_all

if command -v redis-server >/dev/null; then
    rp=$(port)
    redis-server --port "$rp" --bind 127.0.0.1 --dir "$dir" --appendonly yes \
        --appendfsync everysec --save "" --logfile "$dir/redis.log" &
    pids+=($!); measured+=($!)
    up=0
    for _ in $(seq 1 100); do
        if redis-cli -p "$rp" ping 2>/dev/null | grep -q PONG; then up=1; break; fi
        sleep 0.1
    done
    if ((up)); then
        warm none -target="redis://127.0.0.1:$rp"
        run "redis 1 server mixed" none -read-ratio=0.5 -target="redis://127.0.0.1:$rp"
    else
        echo "redis-server did not answer; log in $dir/redis.log" >&2
    fi
    stop_all
else
    echo "redis-server is not installed: Redis skipped" >&2
fi

# 2. Three members each, durable writes only.
three_nodes n
warm "$servers"
run "distkv 3 nodes writes only" "$servers" -read-ratio=0
stop_all

if command -v etcd >/dev/null && ((etcd_bench)); then
    cluster="" clients=()
    declare -A peer client
    for m in m1 m2 m3; do peer[$m]=$(port); client[$m]=$(port); done
    for m in m1 m2 m3; do cluster+="${cluster:+,}$m=http://127.0.0.1:${peer[$m]}"; done
    for m in m1 m2 m3; do
        etcd --name "$m" --data-dir "$dir/$m" \
            --listen-client-urls "http://127.0.0.1:${client[$m]}" \
            --advertise-client-urls "http://127.0.0.1:${client[$m]}" \
            --listen-peer-urls "http://127.0.0.1:${peer[$m]}" \
            --initial-advertise-peer-urls "http://127.0.0.1:${peer[$m]}" \
            --initial-cluster "$cluster" --initial-cluster-state new \
            --initial-cluster-token distkv-bench >"$dir/$m.log" 2>&1 &
        pids+=($!); measured+=($!); clients+=("127.0.0.1:${client[$m]}")
    done
    up=0
    for _ in $(seq 1 150); do
        if python3 -c 'import sys, urllib.request, json
ok = all(json.load(urllib.request.urlopen("http://%s/health" % a, timeout=1)).get("health") == "true" for a in sys.argv[1:])
sys.exit(0 if ok else 1)' "${clients[@]}" 2>/dev/null; then up=1; break; fi
        sleep 0.2
    done
    if ((up)); then
        endpoints=$(IFS=,; echo "${clients[*]}")
        warm none -target="etcd://$endpoints"
        run "etcd 3 members writes only" none -read-ratio=0 -target="etcd://$endpoints"
    else
        echo "etcd did not become healthy; logs in $dir/m1.log, m2.log, m3.log" >&2
    fi
    stop_all
else
    echo "etcd or protoc (for distkv-bench's etcd feature) is not installed: etcd skipped" >&2
fi

echo
python3 - "$dir/rows.tsv" <<'PY'
import sys
rows = {}
for line in open(sys.argv[1]):
    label, ops, cpu = line.rstrip("\n").split("\t")
    rows[label] = (float(ops), float(cpu))
def ratio(ours, theirs, goal):
    if ours not in rows or theirs not in rows:
        print(f"{ours} ÷ {theirs}: not measured")
        return
    (o_ops, o_cpu), (t_ops, t_cpu) = rows[ours], rows[theirs]
    print(f"{ours} ÷ {theirs}: ops/s {o_ops / t_ops:.2f}× (goal ≥ {goal}×), "
          f"CPU per op {o_cpu / t_cpu:.2f}× ({o_cpu:.1f} vs {t_cpu:.1f} µs)")
ratio("distkv 1 node mixed", "redis 1 server mixed", 0.5)
ratio("distkv 3 nodes writes only", "etcd 3 members writes only", 10)
PY
echo "(wal-sync=$WAL_SYNC, $DURATION a run, 50 clients; Redis appendfsync everysec, etcd fsyncs every write)"
