#!/usr/bin/env bash
# The toolbox's entrypoint: run the command in /src, the mounted checkout, with the environments
# and tools built into the image (make in-toolbox mounts them over the checkout's .venvs and
# .work/tools, which hold the host's, for another OS perhaps).
#
# make rebuilds an environment whose lock is newer than it. The image's were built from the files
# in /opt/toolbox/inputs: where the checkout's are the same, they are current, and their mtimes
# are brought forward to say so (dependencies first); where one differs, say so, and make
# rebuilds what it must inside this container (`make toolbox` makes a matching image).
set -euo pipefail
cd /src
if ! [ -f Makefile ]; then
  echo "toolbox: no checkout at /src: run verbs with \`make in-toolbox CMD=...\` from the checkout" >&2
  exec "$@"
fi
# What make's rules for them depend on (the Makefile's $(UV), .venvs/%/.installed and $(HELM)).
prerequisites=(requirements/uv.lock requirements/aws.lock requirements/k8s.lock
  requirements/helm.lock deploy/k8s/tools/install_helm.py tools/pins.txt tools/get-tool.sh)
differ() { ! cmp -s "/opt/toolbox/inputs/$1" "$1"; }

stale=()
while IFS= read -r -d '' input; do
  path=${input#/opt/toolbox/inputs/}
  if differ "$path"; then stale+=("$path"); fi
done < <(find /opt/toolbox/inputs -type f -print0)
if [ ${#stale[@]} -gt 0 ]; then
  echo "toolbox: this image was built from other versions of ${stale[*]}; \`make toolbox\` builds a matching one" >&2
fi
current=1
for path in "${prerequisites[@]}"; do
  if differ "$path"; then current=0; fi
done
if [ $current = 1 ]; then
  for built in .venvs/uv/bin/uv .venvs/*/.installed .work/tools/helm-*/helm; do
    if [ -e "$built" ]; then touch "$built"; fi
    sleep 0.01
  done
fi
exec "$@"
