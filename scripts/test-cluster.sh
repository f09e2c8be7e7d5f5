#!/usr/bin/env bash
# Exercises the local cluster: a put through one node, gets through the others, a batch, a
# delete, and the status (make test-cluster).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN_DIR=${BIN_DIR:-build}
BASE_PORT=${BASE_PORT:-8080}
c() { "$BIN_DIR/distkv-client" -timeout=5s "$@"; }
n1="-server=localhost:$BASE_PORT"; n2="-server=localhost:$((BASE_PORT + 1))"; n3="-server=localhost:$((BASE_PORT + 2))"

set -x
c $n1 put user:1 "Ada Lovelace"
c $n2 get user:1
c $n3 -consistency=all get user:1
c $n1 batch user:2 Grace user:3 Barbara
c $n3 scan -prefix user:
c $n2 delete user:3
c $n1 get user:3
c $n1 status
c $n1 ring
