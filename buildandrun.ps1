# Build the klugerhans Docker image and start JupyterLab (and the web UI) with the current folder mounted.
#   .\buildandrun.ps1           then open the printed JupyterLab URL (token included) or http://127.0.0.1:7860
# Settings (environment): JUPYTER_TOKEN (default: a new random one), LAB_PORT (8888), WEB_PORT (7860),
# KLUGERHANS_IMAGE (klugerhans:latest), KLUGERHANS_CONTAINER (klugerhans). Stop with: docker stop klugerhans
$ErrorActionPreference = "Stop"

$repo = $PSScriptRoot
$work = (Get-Location).Path
$image = if ($env:KLUGERHANS_IMAGE) { $env:KLUGERHANS_IMAGE } else { "klugerhans:latest" }
$name = if ($env:KLUGERHANS_CONTAINER) { $env:KLUGERHANS_CONTAINER } else { "klugerhans" }
$labPort = if ($env:LAB_PORT) { $env:LAB_PORT } else { "8888" }
$webPort = if ($env:WEB_PORT) { $env:WEB_PORT } else { "7860" }

if (-not (Get-Command docker -ErrorAction SilentlyContinue)) {
    Write-Error "buildandrun.ps1: docker not found; install Docker Desktop (https://docs.docker.com/get-docker/)"
}
$token = $env:JUPYTER_TOKEN
if (-not $token) {
    $bytes = New-Object byte[] 24
    [System.Security.Cryptography.RandomNumberGenerator]::Create().GetBytes($bytes)
    $token = -join ($bytes | ForEach-Object { $_.ToString("x2") })
}

docker build -f (Join-Path $repo "docker/Dockerfile") -t $image $repo
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }
docker rm -f $name 2>$null | Out-Null
# Ports are published on 127.0.0.1 only.
docker run -d --init --name $name `
    -p "127.0.0.1:${labPort}:8888" -p "127.0.0.1:${webPort}:7860" `
    -e "JUPYTER_TOKEN=$token" `
    -v "${work}:/home/hans/work" `
    $image all | Out-Null
if ($LASTEXITCODE -ne 0) { exit $LASTEXITCODE }

Write-Host "Waiting for JupyterLab..."
for ($i = 0; $i -lt 60; $i++) {
    $log = docker logs $name 2>&1 | Out-String
    if ($log -match "Jupyter Server .* is running at") { break }
    if ((docker inspect -f "{{.State.Running}}" $name) -ne "true") {
        Write-Host $log
        Write-Error "buildandrun.ps1: the container stopped; its log is above"
    }
    Start-Sleep -Seconds 1
}
Write-Host "JupyterLab: http://127.0.0.1:${labPort}/lab?token=$token"
Write-Host "Web UI:     http://127.0.0.1:${webPort}"
Write-Host "Logs: docker logs -f $name    Stop: docker stop $name"
