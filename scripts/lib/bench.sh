# Shared by the cluster and peer benchmarks (sourced, not run): free ports, DistKV nodes
# started in a temporary directory and stopped on exit, CPU and threads of processes read
# from /proc, and distkv-bench runs printed as one table row each.
#
# The sourcing script sets BIN_DIR, BENCH_DIR, WAL_SYNC and DURATION, and may fill EXTRA
# with arguments for every distkv-bench run. Nodes log at $LOG_LEVEL (default info, the
# server's default) and get $SERVER_FLAGS (default none) besides. `pids` holds every process
# started here (all stopped on exit); `measured` the processes whose CPU a run charges to the
# server side.

dir=$(mktemp -d -t distkv-bench.XXXX)
pids=()
measured=()
cleanup() { for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT

port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
start() { # id port quorum-flags seed: a DistKV node, also measured
    local id=$1 p=$2 q=$3 seed=${4:-}
    "$BIN_DIR/distkv-server" -node-id="$id" -address="127.0.0.1:$p" -data-dir="$dir/$id" $q \
        -wal-sync="$WAL_SYNC" ${seed:+-seed-nodes=$seed} -log-level="${LOG_LEVEL:-info}" ${SERVER_FLAGS:-} >"$dir/$id.log" 2>&1 &
    pids+=($!); measured+=($!)
}
one_node() { # id: one node with N=R=W=1, up; sets $servers
    local p; p=$(port)
    start "$1" "$p" "-replicas=1 -read-quorum=1 -write-quorum=1"; wait_up "$p" 1
    servers="127.0.0.1:$p"
}
three_nodes() { # prefix: nodes <prefix>1..3 with N=3, R=W=2, the first the others' seed, up; sets $servers
    local q="-replicas=3 -read-quorum=2 -write-quorum=2" a b c
    a=$(port); b=$(port); c=$(port)
    start "${1}1" "$a" "$q"; start "${1}2" "$b" "$q" "127.0.0.1:$a"; start "${1}3" "$c" "$q" "127.0.0.1:$a"
    wait_up "$a" 3; wait_up "$b" 3; wait_up "$c" 3
    servers="127.0.0.1:$a,127.0.0.1:$b,127.0.0.1:$c"
}
wait_up() { # port nodes
    for _ in $(seq 1 100); do
        "$BENCH_DIR/distkv-client" -server="127.0.0.1:$1" -timeout=1s status 2>/dev/null | grep -q "Health: $2 total" && return 0
        sleep 0.2
    done
    echo "node on port $1 did not come up; logs in $dir" >&2; return 1
}
stop_all() { # stops every process started so far
    for p in "${pids[@]:-}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${pids[@]:-}"; do wait "$p" 2>/dev/null || true; done
    pids=(); measured=()
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
header() { printf '%-28s %9s %10s %22s %22s %8s\n' "run" "ops/s" "cpu/op µs" "read p50/p99/p99.9 ms" "write p50/p99/p99.9 ms" "threads"; }
run() { # label servers bench-args...: one distkv-bench run, CPU of the measured processes
    local label=$1 servers=$2; shift 2
    local before after threads json
    before=$(cpu_ticks "${measured[@]}")
    json=$("$BENCH_DIR/distkv-bench" -server="$servers" -concurrency=50 -keys=10000 -value-size=100 \
        -duration="$DURATION" -warmup=false -o json "$@" "${EXTRA[@]}")
    after=$(cpu_ticks "${measured[@]}")
    threads=$(max_threads "${measured[@]}")
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
with open(os.path.join(os.environ["BENCH_RESULTS"], "rows.tsv"), "a") as f:
    f.write("%s\t%.1f\t%.2f\n" % (os.environ["LABEL"], r["ops_per_sec"], cpu * 1e6 / max(ops, 1)))
' <<<"$json"
}
warm() { # servers bench-args...: writes the key space (not measured)
    local servers=$1; shift
    "$BENCH_DIR/distkv-bench" -server="$servers" -concurrency=50 -keys=10000 -value-size=100 -read-ratio=0 \
        -duration=1s -warmup=true -o json "$@" "${EXTRA[@]}" >/dev/null
}
last_ops() { python3 -c 'import json,sys; print(int(json.loads(sys.stdin.readlines()[-1])["ops_per_sec"]))' <"$dir/results.jsonl"; }
export BENCH_RESULTS="$dir"
