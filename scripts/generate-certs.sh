#!/usr/bin/env bash
# Generates a development CA and certificates for DistKV (the original's file names):
#
#   $CERT_DIR/ca-cert.pem      ca-key.pem        the CA (keep ca-key.pem private)
#   $CERT_DIR/server-cert.pem  server-key.pem    every node's certificate (server and peer)
#   $CERT_DIR/client-cert.pem  client-key.pem    a client certificate, for mutual TLS
#
# FOR DEVELOPMENT AND TESTS ONLY: one certificate shared by every node, keys on disk without a
# passphrase. In production use your own PKI (one certificate per node, short lifetimes).
#
# Environment overrides:
#   CERT_DIR       where to write (default: ./certs)
#   DAYS           validity in days (default: 365)
#   CA_CN          CA common name (default: "DistKV Development CA")
#   SERVER_CN      server common name (default: distkv-server)
#   CLIENT_CN      client common name (default: distkv-client)
#   EXTRA_SANS     more subject alternative names, comma-separated (e.g. "DNS:kv.example.com,IP:10.0.0.5")
#   FORCE=1        overwrite existing files
#
# The server certificate names localhost, 127.0.0.1, ::1, the docker compose services
# (distkv-node1..3) and the Kubernetes StatefulSet's pods and services (distkv-0..2 under the
# headless service distkv-headless, in the default namespace), so the same files work in every
# deployment in deploy/.
set -euo pipefail

CERT_DIR=${CERT_DIR:-certs}
DAYS=${DAYS:-365}
CA_CN=${CA_CN:-DistKV Development CA}
SERVER_CN=${SERVER_CN:-distkv-server}
CLIENT_CN=${CLIENT_CN:-distkv-client}
EXTRA_SANS=${EXTRA_SANS:-}
FORCE=${FORCE:-0}

command -v openssl >/dev/null 2>&1 || {
    echo "generate-certs.sh needs openssl (apt-get install openssl)" >&2
    exit 1
}
mkdir -p "$CERT_DIR"
if [ -f "$CERT_DIR/ca-cert.pem" ] && [ "$FORCE" != 1 ]; then
    echo "$CERT_DIR/ca-cert.pem exists; set FORCE=1 to overwrite" >&2
    exit 1
fi

sans="DNS:localhost,IP:127.0.0.1,IP:::1"
for i in 1 2 3; do sans="$sans,DNS:distkv-node$i"; done
for i in 0 1 2; do
    for suffix in "" ".distkv-headless" ".distkv-headless.default" ".distkv-headless.default.svc" ".distkv-headless.default.svc.cluster.local"; do
        sans="$sans,DNS:distkv-$i$suffix"
    done
done
sans="$sans,DNS:distkv,DNS:distkv.default.svc,DNS:distkv.default.svc.cluster.local"
[ -n "$EXTRA_SANS" ] && sans="$sans,$EXTRA_SANS"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$CERT_DIR/ca-key.pem" -out "$CERT_DIR/ca-cert.pem" -days "$DAYS" \
    -subj "/CN=$CA_CN" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# leaf NAME CN EXT-USAGE SANS
leaf() {
    local name=$1 cn=$2 usage=$3 san=$4
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$CERT_DIR/$name-key.pem" -out "$tmp/$name.csr" -subj "/CN=$cn" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [ -n "$san" ] && echo "subjectAltName=$san"
    } >"$tmp/$name.ext"
    openssl x509 -req -in "$tmp/$name.csr" -CA "$CERT_DIR/ca-cert.pem" -CAkey "$CERT_DIR/ca-key.pem" \
        -CAcreateserial -out "$CERT_DIR/$name-cert.pem" -days "$DAYS" -extfile "$tmp/$name.ext" 2>/dev/null
}

# Nodes use their certificate both ways: as servers, and as clients of their peers.
leaf server "$SERVER_CN" "serverAuth,clientAuth" "$sans"
leaf client "$CLIENT_CN" "clientAuth" ""
chmod 600 "$CERT_DIR"/*-key.pem
rm -f "$CERT_DIR/ca-cert.srl"

echo "wrote $CERT_DIR/{ca,server,client}-{cert,key}.pem (valid $DAYS days; development only)"
echo "server names: ${sans//,/ }"
