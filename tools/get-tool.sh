#!/usr/bin/env bash
# Install a deploy tool (helm, kubectl) for this machine's OS and architecture from its pinned
# official file (tools/pins.txt, the one table): download, check the sha256, then install. An OS
# or architecture with no pin stops with one line; a wrong digest installs nothing.
#
#   tools/get-tool.sh TOOL [DIR]     installs DIR/TOOL (default /usr/local/bin)
#   tools/get-tool.sh --pin TOOL     prints the row this machine would use, downloads nothing
#
# Needs only bash, curl, tar and sha256sum or shasum (macOS has shasum).
set -euo pipefail
PINS=${PINS:-$(dirname "$0")/pins.txt}

# uname's names to the ones the release files use (Go's GOOS/GOARCH).
platform() {
  local os arch
  case $(uname -s) in
    Linux) os=linux ;;
    Darwin) os=darwin ;;
    *) os= ;;
  esac
  case $(uname -m) in
    x86_64|amd64) arch=amd64 ;;
    arm64|aarch64) arch=arm64 ;;
    *) arch= ;;
  esac
  [ -n "$os" ] && [ -n "$arch" ] && echo "$os $arch"
}

pin() {
  local tool=$1 os arch
  if ! read -r os arch < <(platform); then
    echo "get-tool: no pinned $tool for $(uname -s) $(uname -m): $PINS pins Linux and macOS on x86_64 and arm64; install $tool yourself (docs/operator-toolchain.md)" >&2
    return 1
  fi
  awk -v t="$tool" -v o="$os" -v a="$arch" '$1 == t && $2 == o && $3 == a { print; found = 1 }
    END { exit !found }' "$PINS" || {
    echo "get-tool: $PINS has no row for $tool $os $arch" >&2
    return 1
  }
}

sha256() {
  if command -v sha256sum >/dev/null; then sha256sum "$1"; else shasum -a 256 "$1"; fi | cut -d' ' -f1
}

work=
install_tool() {
  local tool=$1 dest=$2 row name os arch version digest url
  row=$(pin "$tool") || exit 1
  read -r name os arch version digest url <<<"$row"
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  echo "get-tool: $name $version for $os/$arch from $url"
  curl -fsSL --retry 3 -o "$work/download" "$url"
  if [ "$(sha256 "$work/download")" != "$digest" ]; then
    echo "get-tool: $url does not have the pinned sha256 $digest; nothing installed" >&2
    exit 1
  fi
  case $url in
    *.tar.gz) tar -xzf "$work/download" -C "$work" "$os-$arch/$name" && mv "$work/$os-$arch/$name" "$work/$name" ;;
    *) mv "$work/download" "$work/$name" ;;
  esac
  chmod 0755 "$work/$name"
  mkdir -p "$dest"
  mv "$work/$name" "$dest/$name"
  "$dest/$name" version --client 2>/dev/null || "$dest/$name" version
}

case ${1:-} in
  --pin) pin "${2:?usage: $0 --pin TOOL}" ;;
  helm|kubectl) install_tool "$1" "${2:-/usr/local/bin}" ;;
  *) echo "usage: $0 helm|kubectl [DIR] | --pin helm|kubectl" >&2; exit 2 ;;
esac
