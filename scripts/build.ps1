# Builds DistKV from Windows PowerShell into .\build: the client natively (distkv-client.exe,
# distkv-bench.exe), and the Linux server in WSL 2 (build/distkv-server), since the server's
# storage engine runs on Linux only. UNTESTED on Windows.
#
#   .\scripts\build.ps1              client and server
#   .\scripts\build.ps1 -ClientOnly  the client only (no WSL needed)
param([switch]$ClientOnly)
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
New-Item -ItemType Directory -Force -Path build | Out-Null
cargo build --release -p distkv-client --bins
if ($LASTEXITCODE -ne 0) { throw "cargo build of the client failed (exit $LASTEXITCODE)" }
Copy-Item target\release\distkv-client.exe, target\release\distkv-bench.exe build\
if (-not $ClientOnly) {
    if (-not (Get-Command wsl -ErrorAction SilentlyContinue)) {
        throw "building the server needs WSL 2 (wsl --install); use -ClientOnly for the client alone"
    }
    # A Linux target directory of its own, so the two toolchains do not share build output.
    wsl -- bash -lc "CARGO_TARGET_DIR=target/linux scripts/build.sh"
    if ($LASTEXITCODE -ne 0) { throw "the server build in WSL failed (exit $LASTEXITCODE)" }
}
Get-ChildItem build
