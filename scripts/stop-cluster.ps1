# Stops the cluster started by scripts\dev-cluster.ps1 (in WSL, by its recorded PIDs).
# UNTESTED on Windows (see dev-cluster.ps1).
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
wsl -- bash -lc "make stop-cluster"
if ($LASTEXITCODE -ne 0) { throw "make stop-cluster failed in WSL (exit $LASTEXITCODE)" }
