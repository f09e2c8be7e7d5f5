# Windows PowerShell equivalent of scripts/generate-certs.sh, using openssl.exe (for example
# from Git for Windows). UNTESTED on Windows: it runs the same openssl commands as the shell
# script. Development certificates only; see docs/tls.md. Simpler than the shell script:
# -CertDir and -Days only (no EXTRA_SANS and friends), and Kubernetes names for the
# "default" namespace only.
param([string]$CertDir = "certs", [int]$Days = 365)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
if (-not (Get-Command openssl -ErrorAction SilentlyContinue)) { throw "openssl not found" }
New-Item -ItemType Directory -Force -Path $CertDir | Out-Null
$sans = "DNS:localhost,IP:127.0.0.1,IP:::1,DNS:distkv-node1,DNS:distkv-node2,DNS:distkv-node3"
foreach ($i in 0..2) { $sans += ",DNS:distkv-$i,DNS:distkv-$i.distkv-headless,DNS:distkv-$i.distkv-headless.default.svc,DNS:distkv-$i.distkv-headless.default.svc.cluster.local" }
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$CertDir\ca-key.pem" -out "$CertDir\ca-cert.pem" -days $Days -subj "/CN=DistKV Development CA" -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
foreach ($leaf in @(@("server", "distkv-server", "serverAuth,clientAuth", $sans), @("client", "distkv-client", "clientAuth", ""))) {
    $name, $cn, $usage, $san = $leaf
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$CertDir\$name-key.pem" -out "$CertDir\$name.csr" -subj "/CN=$cn"
    $ext = "basicConstraints=critical,CA:FALSE`nkeyUsage=critical,digitalSignature,keyEncipherment`nextendedKeyUsage=$usage"
    if ($san) { $ext += "`nsubjectAltName=$san" }
    Set-Content -Path "$CertDir\$name.ext" -Value $ext
    openssl x509 -req -in "$CertDir\$name.csr" -CA "$CertDir\ca-cert.pem" -CAkey "$CertDir\ca-key.pem" -CAcreateserial -out "$CertDir\$name-cert.pem" -days $Days -extfile "$CertDir\$name.ext"
    Remove-Item "$CertDir\$name.csr", "$CertDir\$name.ext"
}
Write-Host "wrote $CertDir\{ca,server,client}-{cert,key}.pem (development only)"
