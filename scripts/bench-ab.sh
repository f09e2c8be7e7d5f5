#!/usr/bin/env bash
# Compares two builds of the server under the same load, alternating them so that this shared
# machine's drift falls on both: `scripts/bench-ab.sh DIR_A DIR_B` runs, ROUNDS times (default
# 3), A then B on fresh nodes for each setup in SETUPS (default "1r 1m 3m": one node reads only,
# one node mixed, three nodes mixed; also 1w and 3w for writes only, 3r for reads only), each
# run $DURATION (default 10s), with the load generator of $BENCH_DIR (default DIR_B), and
# prints one row per run (ops/s, server CPU per operation, p50/p99/p99.9, threads) and then
# the mean and spread of each setup's CPU per operation and ops/s for A and B.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $# -ge 2 ]] || { echo "usage: $0 DIR_A DIR_B [distkv-bench args]" >&2; exit 2; }
A=$1 B=$2; shift 2
BENCH_DIR=${BENCH_DIR:-$B}
DURATION=${DURATION:-10s}
WAL_SYNC=${WAL_SYNC:-always}
ROUNDS=${ROUNDS:-3}
SETUPS=${SETUPS:-1r 1m 3m}
EXTRA=("$@")
source scripts/lib/bench.sh
header
for round in $(seq 1 "$ROUNDS"); do
    for setup in $SETUPS; do
        case ${setup:1:1} in r) ratio=1 ;; w) ratio=0 ;; *) ratio=0.5 ;; esac
        for side in A B; do
            if [[ $side == A ]]; then BIN_DIR=$A; else BIN_DIR=$B; fi
            if [[ ${setup:0:1} == 1 ]]; then one_node "s$round$side"; else three_nodes "n$round$side"; fi
            warm "$servers"
            run "$side $setup #$round" "$servers" -read-ratio="$ratio"
            stop_all
        done
    done
done
echo
python3 - "$dir/rows.tsv" <<'PY'
import collections, statistics, sys
rows = collections.defaultdict(list)
for line in open(sys.argv[1]):
    label, ops, cpu = line.rstrip("\n").split("\t")
    side, setup, _ = label.split(" ")
    rows[(setup, side)].append((float(ops), float(cpu)))
print("%-6s %-4s %22s %22s" % ("setup", "side", "cpu/op µs mean (range)", "ops/s mean (range)"))
for (setup, side), v in sorted(rows.items()):
    ops = [o for o, _ in v]; cpu = [c for _, c in v]
    print("%-6s %-4s %8.1f (%5.1f-%5.1f) %10.0f (%6.0f-%6.0f)" % (setup, side, statistics.mean(cpu), min(cpu), max(cpu), statistics.mean(ops), min(ops), max(ops)))
PY
echo "(A=$A B=$B, wal-sync=$WAL_SYNC, $DURATION a run)"
