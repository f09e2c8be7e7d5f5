# Starts a local 3-node DistKV cluster on localhost:8080-8082 (Windows PowerShell equivalent of
# scripts/dev-cluster.sh). UNTESTED: DistKV is developed and tested on Linux; this script was
# written to the same steps but has not been run on Windows.
#
#   cargo build --release --workspace --bins   (or: make build)
#   .\scripts\dev-cluster.ps1
#   .\build\distkv-client.exe -server=localhost:8080 status
#   .\scripts\stop-cluster.ps1
param(
    [string]$BinDir = "build",
    [string]$ClusterDir = "data\dev-cluster",
    [int]$BasePort = 8080,
    [int]$Nodes = 3
)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
$server = Join-Path $BinDir "distkv-server.exe"
$client = Join-Path $BinDir "distkv-client.exe"
if (-not (Test-Path $server)) { throw "no $server: build first (cargo build --release)" }
New-Item -ItemType Directory -Force -Path $ClusterDir | Out-Null
$seed = "localhost:$BasePort"
for ($i = 1; $i -le $Nodes; $i++) {
    $port = $BasePort + $i - 1
    $args = @("-node-id=node$i", "-address=localhost:$port", "-data-dir=$ClusterDir\node$i")
    if ($i -gt 1) { $args += "-seed-nodes=$seed" }
    $p = Start-Process -FilePath $server -ArgumentList $args -NoNewWindow -PassThru `
        -RedirectStandardError "$ClusterDir\node$i.log" -RedirectStandardOutput "$ClusterDir\node$i.out"
    Set-Content -Path "$ClusterDir\node$i.pid" -Value $p.Id
    Write-Host "node${i}: localhost:$port (pid $($p.Id), log $ClusterDir\node$i.log)"
}
$deadline = (Get-Date).AddSeconds(30)
for ($i = 1; $i -le $Nodes; $i++) {
    $port = $BasePort + $i - 1
    while ($true) {
        $out = & $client "-server=localhost:$port" "-timeout=1s" status 2>$null
        if ($out -match "Health: $Nodes total nodes, $Nodes alive") { break }
        if ((Get-Date) -gt $deadline) { throw "node$i did not join within 30s; see $ClusterDir\node$i.log" }
        Start-Sleep -Milliseconds 200
    }
}
Write-Host "cluster of $Nodes nodes is up: try $client -server=localhost:$BasePort put hello world"
