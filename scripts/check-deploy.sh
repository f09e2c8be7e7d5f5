#!/usr/bin/env bash
# Checks the deployment files without deploying anything (make check-deploy):
#   - deploy/distkv.example.toml and the Kubernetes ConfigMap's file pass
#     `distkv-server -print-config` (which checks what a start checks);
#   - every compose file and profile passes `docker compose config` (where Docker is installed);
#   - every Kubernetes resource passes `kubernetes-validate --strict` (installed with pip into
#     target/deploy-venv when missing).
#   SERVER_BIN   the server binary (default: target/debug/distkv-server, built if missing)
set -euo pipefail
cd "$(dirname "$0")/.."

server=${SERVER_BIN:-target/debug/distkv-server}
if [ ! -x "$server" ]; then
    cargo build -p distkv-node --bin distkv-server
fi

# A Python with PyYAML and kubernetes-validate: the system's if it has them, else a venv.
if command -v kubernetes-validate >/dev/null 2>&1 && python3 -c 'import yaml' 2>/dev/null; then
    py=python3
    validate=kubernetes-validate
else
    venv=target/deploy-venv
    if [ ! -x "$venv/bin/kubernetes-validate" ]; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet kubernetes-validate
    fi
    py=$venv/bin/python
    validate=$venv/bin/kubernetes-validate
fi

echo "== deploy/distkv.example.toml"
"$server" -config deploy/distkv.example.toml -print-config | tail -1

echo "== deploy/k8s/distkv.yaml"
"$validate" --strict deploy/k8s/distkv.yaml
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$py" - deploy/k8s/distkv.yaml "$tmp/distkv.toml" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap":
        open(sys.argv[2], "w").write(doc["data"]["distkv.toml"])
EOF
# The variables the StatefulSet sets per pod.
DISTKV_NODE_ID=distkv-0 DISTKV_ADDRESS=0.0.0.0:8080 DISTKV_DATA_DIR=/data \
    DISTKV_ADVERTISE_ADDRESS=distkv-0.distkv-headless.default.svc:8080 \
    DISTKV_SEED_NODES=distkv-0.distkv-headless.default.svc:8080 \
    "$server" -config "$tmp/distkv.toml" -print-config | tail -1

if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
elif command -v docker-compose >/dev/null 2>&1; then
    compose=(docker-compose)
else
    echo "== compose files skipped: neither 'docker compose' nor docker-compose is installed"
    exit 0
fi
for file in docker-compose.yml deploy/docker/docker-compose.dev.yml deploy/docker/docker-compose.prod.yml; do
    echo "== $file"
    "${compose[@]}" -f "$file" --profile with-proxy --profile with-monitoring config -q
done
echo "deployment files ok"
