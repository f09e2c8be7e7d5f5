#!/usr/bin/env bash
# Where a node's CPU goes under load: starts one node (NODES=1) or a 3-node cluster (NODES=3,
# N=3, R=W=2) as bench-cluster.sh does, drives it with distkv-bench for $DURATION (default
# 15s; READ_RATIO default 0.5), records every node with `perf record` meanwhile, and prints
# the share of CPU by binary (kernel, distkv-server, libc) and the hottest symbols.
# CALLGRAPH=dwarf gives callers through code built without frame pointers (bigger files).
# Needs perf (Debian's linux-perf). The raw perf.data stays in $OUT (default /tmp/distkv-profile).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build}
BENCH_DIR=${BENCH_DIR:-$BIN_DIR}
DURATION=${DURATION:-15s}
WAL_SYNC=${WAL_SYNC:-always}
NODES=${NODES:-3}
READ_RATIO=${READ_RATIO:-0.5}
OUT=${OUT:-/tmp/distkv-profile}
EXTRA=("$@")
command -v perf >/dev/null || { echo "perf not found: apt-get install linux-perf" >&2; exit 1; }
source scripts/lib/bench.sh
mkdir -p "$OUT"
if [[ $NODES == 1 ]]; then one_node single; else three_nodes n; fi
warm "$servers"
# Recorded for exactly the run: started before it, stopped (SIGINT writes the file) after it.
perf record -q --call-graph "${CALLGRAPH:-fp}" -o "$OUT/perf.data" -p "$(IFS=,; echo "${measured[*]}")" 2>/dev/null &
perf_pid=$!
header
run "$NODES node(s), read ratio $READ_RATIO" "$servers" -read-ratio="$READ_RATIO"
kill -INT "$perf_pid"
wait "$perf_pid" || true
echo; echo "== CPU by binary"
perf report -i "$OUT/perf.data" --no-children --sort dso --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -8
echo; echo "== hottest symbols"
perf report -i "$OUT/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40
