#!/usr/bin/env bash
# Print the first `docker` on PATH that can build the images (BuildKit: --platform, --secret):
#  - one whose buildx plugin answers (`docker buildx version`): Docker Desktop, docker-ce; or
#  - one older than Docker 23, which builds with the engine's own BuildKit when DOCKER_BUILDKIT=1
#    (Debian 12's docker.io 20.10). From 23 on, `docker build` needs buildx for BuildKit.
# None: one line on stderr saying what to install, and exit 1. The Makefile's DOCKER comes from
# here unless given (make DOCKER=...).
#
#   tools/find-docker.sh              the path of that docker
#   tools/find-docker.sh --version    its version line (tools/tools.txt's probe)
set -euo pipefail

can_build() {
  local docker=$1 major
  "$docker" buildx version >/dev/null 2>&1 && return 0
  major=$("$docker" --version 2>/dev/null | sed -nE 's/^Docker version ([0-9]+)\..*/\1/p')
  [ -n "$major" ] && [ "$major" -lt 23 ]
}

found=
seen=" "
while IFS= read -r docker; do
  # The same file under two PATH entries (/bin -> /usr/bin) is one candidate.
  real=$(cd "$(dirname "$docker")" && pwd -P)/$(basename "$docker")
  case $seen in *" $real "*) continue ;; esac
  seen="$seen$real "
  if can_build "$docker"; then
    found=$docker
    break
  fi
done < <(type -ap docker)

if [ -z "$found" ]; then
  if [ "$seen" = " " ]; then
    echo "find-docker: no docker on PATH" >&2
  else
    echo "find-docker: no docker on PATH can build images:${seen% } have neither the buildx plugin (install docker-buildx, or Docker Desktop) nor are older than Docker 23" >&2
  fi
  exit 1
fi
case ${1:-} in
  --version) "$found" --version ;;
  *) echo "$found" ;;
esac
