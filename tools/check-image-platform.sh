#!/usr/bin/env bash
# After a build: fail unless IMAGE is for PLATFORM (os/arch, e.g. linux/amd64, the nodes'), as
# `docker image inspect` reports it. An image built for another architecture starts on the nodes
# only to die with "exec format error"; this stops it before it is pushed.
#
#   DOCKER=docker tools/check-image-platform.sh IMAGE PLATFORM
set -euo pipefail
image=${1:?usage: $0 IMAGE PLATFORM} platform=${2:?usage: $0 IMAGE PLATFORM}
built=$("${DOCKER:-docker}" image inspect -f '{{.Os}}/{{.Architecture}}' "$image")
if [ "$built" != "$platform" ]; then
  echo "image: $image is built for $built, but the nodes run $platform (the Makefile's NODE_PLATFORM); rebuild with --platform $platform" >&2
  exit 1
fi
echo "$image: $built, the nodes' platform"
