#!/usr/bin/env bash
# Make a Docker engine available: install Debian's docker.io + docker-compose when absent, start
# dockerd in the background when nothing answers, wait until it does. Idempotent. A dockerd this
# script starts writes its pid to $DOCKERD_PIDFILE so that `make docker-stop` can end exactly it.
set -euo pipefail
DOCKERD_PIDFILE=${DOCKERD_PIDFILE:-/run/registro-dockerd.pid}
DOCKERD_LOG=${DOCKERD_LOG:-/var/log/registro-dockerd.log}

if ! [ -x /usr/bin/docker ] || ! command -v dockerd >/dev/null || ! command -v docker-compose >/dev/null; then
    echo "ensure-docker: installing docker.io and docker-compose" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends docker.io docker-compose debootstrap >/dev/null
fi
if ! command -v debootstrap >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
fi

if /usr/bin/docker info >/dev/null 2>&1; then
    exit 0
fi
echo "ensure-docker: starting dockerd (log: $DOCKERD_LOG)" >&2
nohup dockerd >"$DOCKERD_LOG" 2>&1 &
echo $! >"$DOCKERD_PIDFILE"
for _ in $(seq 1 60); do
    if /usr/bin/docker info >/dev/null 2>&1; then
        exit 0
    fi
    sleep 1
done
echo "ensure-docker: dockerd did not answer within 60 s; last log lines:" >&2
tail -n 30 "$DOCKERD_LOG" >&2
exit 1
