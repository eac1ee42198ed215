#!/usr/bin/env bash
# Build the klugerhans Docker image and start JupyterLab (and the web UI) with the current folder mounted.
#   ./buildandrun.sh            then open the printed JupyterLab URL (token included) or http://127.0.0.1:7860
# Settings (environment): JUPYTER_TOKEN (default: a new random one), LAB_PORT (8888), WEB_PORT (7860),
# KLUGERHANS_IMAGE (klugerhans:latest), KLUGERHANS_CONTAINER (klugerhans). Stop with: docker stop klugerhans
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
work="$(pwd)"
image="${KLUGERHANS_IMAGE:-klugerhans:latest}"
name="${KLUGERHANS_CONTAINER:-klugerhans}"
lab_port="${LAB_PORT:-8888}"
web_port="${WEB_PORT:-7860}"

if ! command -v docker >/dev/null 2>&1; then
    echo "buildandrun.sh: docker not found; install Docker (https://docs.docker.com/get-docker/)" >&2
    exit 1
fi
token="${JUPYTER_TOKEN:-}"
if [ -z "$token" ]; then
    token="$(od -An -tx1 -N24 /dev/urandom | tr -d ' \n')"
fi

docker build -f "$repo/docker/Dockerfile" -t "$image" "$repo"
docker rm -f "$name" >/dev/null 2>&1 || true
# Ports are published on 127.0.0.1 only; --user makes files written into the mounted folder the caller's.
docker run -d --init --name "$name" \
    --user "$(id -u):$(id -g)" \
    -p "127.0.0.1:${lab_port}:8888" -p "127.0.0.1:${web_port}:7860" \
    -e JUPYTER_TOKEN="$token" \
    -v "$work:/home/hans/work" \
    "$image" all >/dev/null

echo "Waiting for JupyterLab..."
for _ in $(seq 1 60); do
    if docker logs "$name" 2>&1 | grep -q "Jupyter Server .* is running at"; then
        break
    fi
    if [ "$(docker inspect -f '{{.State.Running}}' "$name" 2>/dev/null)" != "true" ]; then
        docker logs "$name" >&2 || true
        echo "buildandrun.sh: the container stopped; its log is above" >&2
        exit 1
    fi
    sleep 1
done
echo "JupyterLab: http://127.0.0.1:${lab_port}/lab?token=${token}"
echo "Web UI:     http://127.0.0.1:${web_port}"
echo "Logs: docker logs -f ${name}    Stop: docker stop ${name}"
