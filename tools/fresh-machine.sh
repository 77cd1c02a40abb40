#!/usr/bin/env bash
# The README, typed by a newcomer on a stock Debian machine: a minimal root filesystem of SUITE
# (debootstrap), in it the README's install line for Debian, a fresh clone of this repository's
# HEAD, `make run` until a POST and a GET answer, then `make test`, which must pass with nothing
# skipped. Fails when any README step fails, so wrong instructions fail CI. Every step runs as
# root, as the install line does and as CI does: one test (SQLite on a full disk) mounts a small
# tmpfs, which only root can, and a chroot cannot give an ordinary user a namespace to do it in.
#
#   tools/fresh-machine.sh SUITE      bookworm (Debian 12), trixie (Debian 13), testing, ...
#
# Run as root, or it asks sudo (debootstrap, chroot, mounts). The machine's own parts, not the
# README's: the base root filesystem and downloaded .deb files are cached under FRESH_CACHE (a new
# machine only pays once per suite); the chroot shares this machine's network, DNS and TLS trust
# (SSL_CERT_FILE, or this machine's CA bundle, which holds a TLS-intercepting proxy's CA where there
# is one), has a policy-rc.d so that installing postgresql starts no server, and accepts a
# mirror's Release files past their Valid-Until (a snapshot mirror's testing).
# Writes a line of figures per step and .work/fresh/SUITE.json.
set -euo pipefail
suite=${1:?usage: tools/fresh-machine.sh SUITE}
# debootstrap, chroot and mounts need root: an ordinary user (a CI runner) goes through sudo.
[ "$(id -u)" = 0 ] || exec sudo --preserve-env=SSL_CERT_FILE,FRESH_CACHE,FRESH_MIRROR "$0" "$@"
repo=$(cd "$(dirname "$0")/.." && pwd)
cache=${FRESH_CACHE:-/var/cache/registro-fresh}
work=$repo/.work/fresh
root=$work/$suite
mkdir -p "$cache/apt-$suite" "$work"

say() { printf 'fresh-machine %s: %s\n' "$suite" "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# The Debian mirror this machine's apt uses, if it uses one (an Ubuntu host's is no use here).
mirror=${FRESH_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.sources \
  /etc/apt/sources.list.d/*.list 2>/dev/null | sed -nE 's/^(URIs:|deb) *(https?:[^ ]+).*/\2/p' |
  grep -v security | grep -E '/debian/?$' | head -n 1 || true)}
mirror=${mirror:-http://deb.debian.org/debian}

# The install line the README gives for Debian, word for word.
# shellcheck disable=SC2016 # the backquotes are the README's code span, not a command
install_line=$(grep -E '^\| Debian 12' "$repo/README.md" | grep -oE '`apt-get install [^`]+`' | tr -d '`')
[ -n "$install_line" ] || { echo "fresh-machine: README.md has no Debian install line" >&2; exit 1; }

mounted=()
cleanup() {
  local m
  for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
    m=${mounted[$i]}
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf "$root"
}
trap cleanup EXIT
bind() { mkdir -p "$root$2"; mount --bind "$1" "$root$2"; mounted+=("$root$2"); }

# 1. A stock minimal Debian: from the cached tarball, or debootstrapped once.
started=$(now)
tarball=$cache/rootfs-$suite.tar
if [ ! -s "$tarball" ]; then
  say "debootstrap --variant=minbase $suite from $mirror (once per machine)"
  rm -rf "$root" && mkdir -p "$root"
  debootstrap --variant=minbase --include=ca-certificates "$suite" "$root" "$mirror" >/dev/null
  tar -C "$root" -cf "$tarball.new" . && mv "$tarball.new" "$tarball"
  rm -rf "$root"
fi
rm -rf "$root" && mkdir -p "$root" && tar -C "$root" -xf "$tarball"
cp /etc/resolv.conf "$root/etc/resolv.conf"
trust=${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}
if [ -s "$trust" ]; then
  cp "$trust" "$root/usr/local/share/fresh-machine-ca.crt"
fi
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
# A mirror may serve a snapshot whose testing Release has passed its Valid-Until date.
echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99fresh-machine-mirror"
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
bind /dev/shm /dev/shm
bind "$cache/apt-$suite" /var/cache/apt/archives
mkdir -p "$root/mnt/origin"
mount --bind "$repo" "$root/mnt/origin"
mount -o remount,bind,ro "$root/mnt/origin"
mounted+=("$root/mnt/origin")
say "root filesystem ready in $(since "$started") s"

# Inside the machine: a clean environment, plus this machine's TLS trust when it has its own CA.
inside() {
  local ca=() 
  if [ -s "$root/usr/local/share/fresh-machine-ca.crt" ]; then
    ca=(SSL_CERT_FILE=/usr/local/share/fresh-machine-ca.crt PIP_CERT=/usr/local/share/fresh-machine-ca.crt
        GIT_SSL_CAINFO=/usr/local/share/fresh-machine-ca.crt)
  fi
  chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    HOME=/root LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive "${ca[@]}" "$@"
}

# 2. The README's install line, as root.
started=$(now)
inside apt-get update -qq
# shellcheck disable=SC2086 # the README's words, one package each
inside ${install_line/apt-get install/apt-get install -y -qq} >/dev/null
python=$(inside python3 -c 'import sys; print(sys.version.split()[0])')
install_seconds=$(since "$started")
say "README install line ($install_line): $install_seconds s; Python $python"

# 3. A fresh clone.
inside git clone -q --no-hardlinks /mnt/origin /root/registro
commit=$(inside git -C /root/registro rev-parse --short HEAD)

# 4. make doctor is truthful here: the README's groups (run, test) lack nothing, and every package
# it tells to install, for any group, exists in this distribution.
inside bash -c 'cd ~/registro && make doctor' >"$work/$suite-doctor.log" 2>&1
if awk '/^[a-z-]+ \(make/ { group = $1 } /MISSING|TOO OLD|TOO NEW/ && (group == "run" || group == "test")' \
    "$work/$suite-doctor.log" | grep .; then
  say "make doctor: the README's install line leaves the above missing"
  exit 1
fi
grep -oE 'apt-get install [a-z0-9.+-]+' "$work/$suite-doctor.log" | awk '{print $3}' | sort -u |
  while read -r package; do
    inside apt-cache show "$package" >/dev/null 2>&1 ||
      { say "make doctor tells to apt-get install $package, which $suite does not have"; exit 1; }
  done
say "make doctor: run and test complete; every package it names exists in $suite"

# 5. make run, until a POST and a GET answer (the first run creates the venvs).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
started=$(now)
inside setsid bash -c \
  "cd ~/registro && exec make run PORT=$port" >"$work/$suite-run.log" 2>&1 &
runner=$!
answered=
for _ in $(seq 600); do
  if curl -sf "http://127.0.0.1:$port/data" -H 'Content-Type: application/json' \
      -d '{"name": "fresh-machine"}' >/dev/null 2>&1 &&
    curl -sf "http://127.0.0.1:$port/data" | grep -q '"fresh-machine"'; then
    answered=yes
    break
  fi
  kill -0 "$runner" 2>/dev/null || break
  sleep 1
done
run_seconds=$(since "$started")
pkill -TERM -f "registro serve --port $port" 2>/dev/null || true
wait "$runner" 2>/dev/null || true
if [ -z "$answered" ]; then
  say "make run did not answer a POST and a GET; its output:"
  cat "$work/$suite-run.log"
  exit 1
fi
say "make run: a POST and a GET answered $run_seconds s after it started (installing .venv first)"

# 6. make test: every test passes, none is skipped.
started=$(now)
status=0
inside bash -c 'cd ~/registro && make test' >"$work/$suite-test.log" 2>&1 || status=$?
test_seconds=$(since "$started")
summary=$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$work/$suite-test.log" | tail -n 1 | tr -d '=' | sed 's/^ *//; s/ *$//')
say "make test: ${summary:-no summary} ($test_seconds s, exit $status)"
if [ $status -ne 0 ] || ! grep -qE '^[0-9]+ passed' <<<"$summary" ||
  grep -qE 'skipped|failed|error|xfail' <<<"$summary"; then
  # The failures first (pytest's FAILURES and ERRORS sections, up to the next heading): the
  # end of the output is the coverage table, which would push them out of a CI log's excerpt.
  say "make test must pass with nothing skipped; its failures and errors:"
  awk '/^=+ (FAILURES|ERRORS) =+$/ {on = 1} on && /^=+ / && !/(FAILURES|ERRORS)/ {on = 0} on' \
    "$work/$suite-test.log" | head -n 200
  say "the end of its output:"
  tail -n 30 "$work/$suite-test.log"
  exit 1
fi

printf '{"suite": "%s", "python": "%s", "commit": "%s", "install_seconds": %s, "run_seconds": %s, "test_seconds": %s, "test_summary": "%s"}\n' \
  "$suite" "$python" "$commit" "$install_seconds" "$run_seconds" "$test_seconds" "$summary" >"$work/$suite.json"
say "passed"
