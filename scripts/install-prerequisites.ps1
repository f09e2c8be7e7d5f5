# Installs what building DistKV on Windows needs, with winget: the Rust toolchain (for the
# client), Git for Windows (its openssl.exe serves scripts\generate-certs.ps1), and WSL 2 with
# Debian, in which scripts/install-prerequisites.sh then installs the Linux side (the server
# runs on Linux only). Run from an elevated PowerShell. UNTESTED on Windows.
$ErrorActionPreference = "Stop"
Set-Location (Join-Path $PSScriptRoot "..")
if (-not (Get-Command winget -ErrorAction SilentlyContinue)) {
    throw "winget not found: install 'App Installer' from the Microsoft Store, or install Rust (https://rustup.rs), Git and WSL by hand"
}
if (-not (Get-Command cargo -ErrorAction SilentlyContinue)) {
    winget install --id Rustlang.Rustup -e --accept-source-agreements --accept-package-agreements
}
if (-not (Get-Command openssl -ErrorAction SilentlyContinue)) {
    winget install --id Git.Git -e --accept-source-agreements --accept-package-agreements
    Write-Host "openssl.exe comes with Git: add C:\Program Files\Git\usr\bin to PATH"
}
if (-not (Get-Command wsl -ErrorAction SilentlyContinue)) {
    wsl --install -d Debian
    Write-Host "WSL installed: restart Windows, open Debian once, then run this script again"
    exit 0
}
# The Linux side: Rust and the packages the build and tests use.
wsl -- bash -lc "command -v cargo >/dev/null || (curl -sSf https://sh.rustup.rs | sh -s -- -y)"
wsl -- bash -lc "sudo scripts/install-prerequisites.sh"
if ($LASTEXITCODE -ne 0) { throw "scripts/install-prerequisites.sh failed in WSL (exit $LASTEXITCODE)" }
Write-Host "Ready: .\scripts\build.ps1, then .\scripts\dev-cluster.ps1"
