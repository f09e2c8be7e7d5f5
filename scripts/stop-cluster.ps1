# Stops the cluster started by scripts/dev-cluster.ps1, by its recorded PIDs (never by name).
# UNTESTED on Windows (see dev-cluster.ps1).
param([string]$ClusterDir = "data\dev-cluster")
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
Get-ChildItem -Path $ClusterDir -Filter "node*.pid" | ForEach-Object {
    $id = [int](Get-Content $_.FullName)
    $name = $_.BaseName
    try { Stop-Process -Id $id -ErrorAction Stop; Write-Host "$name stopped" }
    catch { Write-Host "$name was not running" }
    Remove-Item $_.FullName
}
