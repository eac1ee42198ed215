#!/usr/bin/env bash
# Container entry point: `all` (default) runs JupyterLab on 8888 and the web UI on 7860; `lab` or `web` runs one;
# anything else is executed as a command. JupyterLab's token comes from $JUPYTER_TOKEN, else one is generated
# and printed. Both listen on all interfaces of the container: publish the ports on 127.0.0.1 of the host.
set -euo pipefail

LAB_PORT="${LAB_PORT:-8888}"
WEB_PORT="${WEB_PORT:-7860}"

# Running as the host user (docker run --user) leaves HOME unwritable; Jupyter and matplotlib need one.
if [ ! -w "${HOME:-/nonexistent}" ]; then
    export HOME=/tmp/klugerhans-home
    mkdir -p "$HOME"
fi

# An empty work folder (nothing mounted) gets a copy of the notebooks shipped in the image.
if [ -w . ] && [ ! -e notebooks ] && [ -d /opt/klugerhans/notebooks ]; then
    cp -r /opt/klugerhans/notebooks ./notebooks
fi

start_lab() {
    if [ -z "${JUPYTER_TOKEN:-}" ]; then
        JUPYTER_TOKEN="$(python -c 'import secrets; print(secrets.token_hex(24))')"
    fi
    export JUPYTER_TOKEN  # jupyter-lab reads its token from here, so it never shows in `ps`
    echo "JupyterLab: http://127.0.0.1:${LAB_PORT}/lab?token=${JUPYTER_TOKEN}"
    exec jupyter-lab --ip=0.0.0.0 --port="$LAB_PORT" --no-browser --ServerApp.root_dir="$PWD"
}

start_web() {
    echo "Web UI:     http://127.0.0.1:${WEB_PORT}"
    local args=(serve --host 0.0.0.0 --port "$WEB_PORT")
    if [ -n "${KLUGERHANS_CHECKPOINT:-}" ]; then
        args+=(--checkpoint "$KLUGERHANS_CHECKPOINT")
    fi
    exec klugerhans "${args[@]}"
}

case "${1:-all}" in
    lab) start_lab ;;
    web) start_web ;;
    all)
        # Each runs in a background subshell that execs the server, so $web and $lab are the servers' PIDs.
        start_web &
        web=$!
        start_lab &
        lab=$!
        trap 'kill -TERM "$web" "$lab" 2>/dev/null || true' INT TERM
        # When either server stops, stop the other and report the first exit status.
        status=0
        wait -n "$web" "$lab" || status=$?
        kill -TERM "$web" "$lab" 2>/dev/null || true
        wait || true
        exit "$status"
        ;;
    *) exec "$@" ;;
esac
