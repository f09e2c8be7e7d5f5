#!/usr/bin/env bash
# docker compose (v2) or docker-compose (v1.28+), whichever this machine has, on
# docker-compose.yml: scripts/compose.sh up -d, scripts/compose.sh down -v, ...
set -euo pipefail
cd "$(dirname "$0")/.."
if docker compose version >/dev/null 2>&1; then
    exec docker compose -f docker-compose.yml "$@"
elif command -v docker-compose >/dev/null 2>&1; then
    exec docker-compose -f docker-compose.yml "$@"
fi
echo "neither 'docker compose' nor docker-compose is installed" >&2
exit 1
