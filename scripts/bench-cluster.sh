#!/usr/bin/env bash
# Measures DistKV with distkv-bench on this machine: one node (N=1), then a 3-node cluster
# (N=3, R=W=2). Each setup runs a mixed workload (50 % reads), then reads only, then writes
# only: 50 concurrent clients for $DURATION each (default 20s), 100-byte values over 10,000
# keys, QUORUM, -wal-sync=$WAL_SYNC (default always), each key's requests sent to a replica
# of it (distkv-bench -token-aware). Then the mixed workload again as an open loop at half
# the mixed run's throughput (-rate), for the latency percentiles under a steady load. Last,
# the 3-node mixed run again with -worker-threads=1 on each node (the nodes and the load
# generator share this machine's cores).
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
EXTRA=("$@")
source scripts/lib/bench.sh
header
setup_runs() { # label servers
    local label=$1 servers=$2 half
    warm "$servers"
    run "$label mixed" "$servers" -read-ratio=0.5
    half=$(( $(last_ops) / 2 ))
    run "$label reads only" "$servers" -read-ratio=1
    run "$label writes only" "$servers" -read-ratio=0
    # Open loop at half the mixed run's throughput: the latency a steady load sees, measured
    # from each request's intended start.
    if ((half > 0)); then run "$label mixed @ $half/s" "$servers" -read-ratio=0.5 -rate="$half"; fi
}

one_node single
setup_runs "1 node" "$servers"
stop_all

three_nodes n
setup_runs "3 nodes" "$servers"
stop_all

# The same cluster with one worker thread per node: three nodes and the load generator share
# this machine's cores, where fewer threads waking each other cost less (-worker-threads).
SERVER_FLAGS="${SERVER_FLAGS:-} -worker-threads=1"
three_nodes w
warm "$servers"
run "3 nodes mixed, 1 thread" "$servers" -read-ratio=0.5
echo "(wal-sync=$WAL_SYNC, $DURATION a run; cpu/op sums every node's CPU; raw reports: distkv-bench -o json)"
