#!/usr/bin/env bash
# Exercises the local cluster (make test-cluster): a put through one node, gets through the
# others, a batch, a scan, a delete, the status and the ring. Every step checks its output;
# the script stops at the first step that does not print what it should.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build}
BASE_PORT=${BASE_PORT:-8080}
n1="-server=localhost:$BASE_PORT"; n2="-server=localhost:$((BASE_PORT + 1))"; n3="-server=localhost:$((BASE_PORT + 2))"

# expect PATTERN CLIENT-ARGS...: runs the client, shows its output, and fails unless the
# output matches PATTERN (an extended regex).
expect() {
    local pattern=$1; shift
    echo "+ distkv-client $*"
    local out
    out=$("$BIN_DIR/distkv-client" -timeout=5s "$@" 2>&1) || { echo "$out"; echo "FAILED: exit $?"; exit 1; }
    echo "$out"
    grep -Eq -- "$pattern" <<<"$out" || { echo "FAILED: expected /$pattern/"; exit 1; }
}

expect "Successfully stored key 'user:1'" $n1 put user:1 "Ada Lovelace"
expect "^Value: Ada Lovelace$" $n2 get user:1
expect "^Value: Ada Lovelace$" $n3 -consistency=all get user:1
expect "Successfully stored 2 key-value pairs" $n1 batch user:2 Grace user:3 Barbara
expect "user:3" $n3 scan -prefix user:
expect "Successfully deleted key 'user:3'" $n2 delete user:3
expect "Key 'user:3' not found" $n1 get user:3
expect "Health: 3 total nodes, 3 alive" $n1 status
expect "node3" $n1 ring
echo "test-cluster: every check passed"
