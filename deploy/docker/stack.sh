#!/usr/bin/env bash
# The local stack's lifecycle, run from the repository root (the Makefile calls it):
#   stack.sh up TAG       start everything with registro:TAG; return once all is healthy,
#                         or fail with the logs of what is not
#   stack.sh down         remove containers, networks and volumes
#   stack.sh compose ...  any docker-compose command on this project
set -euo pipefail
PROJECT=${STACK_PROJECT:-registro}
STATE=.work/stack
UP_TIMEOUT=${STACK_UP_TIMEOUT:-420}

compose() {
    local cmd
    if command -v docker-compose >/dev/null; then cmd=(docker-compose); else cmd=(docker compose); fi
    touch "$STATE/stack.env"
    "${cmd[@]}" -p "$PROJECT" -f compose.yaml --env-file "$STATE/stack.env" --profile canary "$@"
}

# Services that must be healthy (they have a healthcheck) or running (postgres-exporter), and the
# one-shot migrate that must have exited 0.
LONG_RUNNING=(etcd pg1 pg2 pgproxy postgres-exporter app1 app2 app3 haproxy prometheus traces)

state_of() {  # healthy | running | exited:N | missing | starting | unhealthy
    local id
    id=$(compose ps -q "$1" 2>/dev/null | head -1)
    [ -n "$id" ] || { echo missing; return; }
    docker inspect -f '{{if .State.Running}}{{if .State.Health}}{{.State.Health.Status}}{{else}}running{{end}}{{else}}exited:{{.State.ExitCode}}{{end}}' "$id"
}

dump_logs() {
    for svc in "$@"; do
        echo "----- $svc: $(state_of "$svc") -----" >&2
        compose logs --no-color --tail=60 "$svc" >&2 || true
    done
}

up() {
    local tag=$1
    mkdir -p "$STATE"
    echo "REGISTRO_TAG=$tag" >"$STATE/stack.env"
    if ! compose up -d --no-build --remove-orphans etcd pg1 pg2 pgproxy postgres-exporter migrate app1 app2 app3 haproxy prometheus traces; then
        echo "stack-up: docker-compose up failed" >&2
        dump_logs migrate "${LONG_RUNNING[@]}"
        return 1
    fi
    local deadline=$((SECONDS + UP_TIMEOUT)) pending s
    while :; do
        pending=()
        case $(state_of migrate) in
            exited:0) ;;
            exited:*) echo "stack-up: migrate failed" >&2; dump_logs migrate; return 1 ;;
            *) pending+=(migrate) ;;
        esac
        for svc in "${LONG_RUNNING[@]}"; do
            s=$(state_of "$svc")
            if [ "$s" = healthy ] || { [ "$s" = running ] && [ "$svc" = postgres-exporter ]; }; then
                continue
            fi
            pending+=("$svc")
        done
        [ ${#pending[@]} -eq 0 ] && break
        if [ $SECONDS -ge $deadline ]; then
            echo "stack-up: not healthy after ${UP_TIMEOUT}s: ${pending[*]}" >&2
            dump_logs "${pending[@]}"
            return 1
        fi
        sleep 2
    done
    echo "stack-up: healthy (registro:$tag) in ${SECONDS}s; https://127.0.0.1:8443  prometheus http://127.0.0.1:9090"
}

down() {
    compose down --volumes --remove-orphans --timeout 10
}

case ${1:-} in
    up) up "${2:?usage: stack.sh up TAG}" ;;
    down) down ;;
    compose) shift; compose "$@" ;;
    *) echo "usage: stack.sh up TAG | down | compose ARGS..." >&2; exit 2 ;;
esac
