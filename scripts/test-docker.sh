#!/usr/bin/env bash
# The 3-node cluster of docker-compose.yml on this machine's Docker engine (make test-docker):
# build the image, compose up, put through node 1, get through node 3, stop a container, reads
# and writes at QUORUM still succeed, start it again, it catches up; compose down, and nothing
# of the run is left behind (containers, volumes, networks).
#
#   SKIP_BUILD=1   use the image already built (distkv:latest)
set -euo pipefail
cd "$(dirname "$0")/.."

command -v docker >/dev/null 2>&1 || { echo "test-docker: no docker command" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "test-docker: the Docker engine does not answer" >&2; exit 1; }
if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "test-docker: neither 'docker compose' nor docker-compose is installed" >&2
    exit 1
fi

project="distkv-test-$$"
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1]);s.close()'; }
export DISTKV_PORT_1=$(free_port) DISTKV_PORT_2=$(free_port) DISTKV_PORT_3=$(free_port)
client=${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/distkv-client
dc() { "${compose[@]}" -p "$project" -f docker-compose.yml "$@"; }
c() { "$client" -timeout=5s "$@"; }

leftovers() {
    {
        docker ps -aq --filter "label=com.docker.compose.project=$project"
        docker volume ls -q --filter "label=com.docker.compose.project=$project"
        docker network ls -q --filter "label=com.docker.compose.project=$project"
    } | wc -l
}
cleanup() {
    local rc=$?
    if [ $rc -ne 0 ]; then
        echo "--- logs of the failed run"
        dc logs --no-color --tail=40 2>/dev/null || true
    fi
    dc down -v --remove-orphans >/dev/null 2>&1 || true
    exit $rc
}
trap cleanup EXIT

# wait_until SECONDS WHAT CMD...: polls CMD until it succeeds, failing after SECONDS.
wait_until() {
    local deadline=$(( $(date +%s) + $1 )) what=$2; shift 2
    until "$@" >/dev/null 2>&1; do
        if [ "$(date +%s)" -ge "$deadline" ]; then
            echo "FAILED: $what (within $1 s)" >&2
            return 1
        fi
        sleep 0.5
    done
    echo "ok: $what"
}
alive() { [ "$(c -server="localhost:$1" status 2>/dev/null | grep -c ' - ALIVE - ')" -eq "$2" ]; }

if [ "${SKIP_BUILD:-0}" != 1 ]; then
    scripts/docker-build.sh
fi

echo "== compose up ($project on ports $DISTKV_PORT_1, $DISTKV_PORT_2, $DISTKV_PORT_3)"
dc up -d
wait_until 90 "three nodes alive as node 1 sees them" alive "$DISTKV_PORT_1" 3
wait_until 30 "three nodes alive as node 3 sees them" alive "$DISTKV_PORT_3" 3
wait_until 30 "every container healthy" bash -c \
    "[ \$(docker ps --filter label=com.docker.compose.project=$project --filter health=healthy -q | wc -l) -eq 3 ]"

c -server="localhost:$DISTKV_PORT_1" put user:1 "Ada Lovelace"
c -server="localhost:$DISTKV_PORT_3" get user:1 | grep -q "Value: Ada Lovelace"
echo "ok: put through node 1, got through node 3"

echo "== stop node 2"
dc stop distkv-node2
c -server="localhost:$DISTKV_PORT_1" -consistency=quorum put during-outage "written while node 2 was down"
c -server="localhost:$DISTKV_PORT_3" -consistency=quorum get during-outage | grep -q "written while node 2"
c -server="localhost:$DISTKV_PORT_3" -consistency=quorum get user:1 | grep -q "Ada Lovelace"
echo "ok: QUORUM reads and writes with node 2 down"

echo "== start node 2"
dc start distkv-node2
wait_until 60 "node 2 serves again" c -server="localhost:$DISTKV_PORT_2" health
wait_until 60 "three nodes alive again" alive "$DISTKV_PORT_1" 3
# It catches up: the hint for the write it missed is delivered, and a read that needs every
# replica sees the write.
wait_until 60 "the missed write is delivered to node 2" bash -c \
    "$client -timeout=5s -server=localhost:$DISTKV_PORT_2 -consistency=all get during-outage | grep -q 'written while node 2'"

echo "== compose down"
dc down -v --remove-orphans
left=$(leftovers)
if [ "$left" -ne 0 ]; then
    echo "FAILED: $left containers, volumes or networks of $project left behind" >&2
    exit 1
fi
echo "ok: nothing left behind"
echo "test-docker: every check passed"
