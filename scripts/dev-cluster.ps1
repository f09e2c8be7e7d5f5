# Starts a local 3-node DistKV cluster on localhost:8080-8082, from Windows PowerShell.
# UNTESTED: DistKV is developed and tested on Linux; these scripts have not been run on Windows.
#
# The server runs on Linux only (its storage engine uses Unix file APIs: positional reads,
# memory-mapped WAL, fallocate), so on Windows the cluster runs in WSL 2, which forwards its
# ports to localhost. The client builds and runs natively (scripts\build.ps1).
#
#   .\scripts\install-prerequisites.ps1     once: Rust, OpenSSL, WSL 2 with make and gcc
#   .\scripts\dev-cluster.ps1               builds in WSL and starts the nodes there
#   .\build\distkv-client.exe -server=localhost:8080 status
#   .\scripts\stop-cluster.ps1
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
if (-not (Get-Command wsl -ErrorAction SilentlyContinue)) {
    throw "the DistKV server runs on Linux: install WSL 2 (wsl --install), or use Docker (docker compose up -d)"
}
# WSL starts in the Windows directory it is called from (as /mnt/c/...).
wsl -- bash -lc "make dev-cluster"
if ($LASTEXITCODE -ne 0) { throw "make dev-cluster failed in WSL (exit $LASTEXITCODE)" }
