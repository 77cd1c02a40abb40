#!/usr/bin/env bash
# Provide the base image every Dockerfile starts FROM (default debian:bookworm-slim; or trixie-slim).
# Anywhere with Docker Hub it is simply pulled. Where the registry is unreachable, it is built from
# Debian packages with debootstrap and slimmed the way the official slim image is.
set -euo pipefail
BASE_IMAGE=${BASE_IMAGE:-debian:bookworm-slim}
DOCKER=${DOCKER:-/usr/bin/docker}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if "$DOCKER" image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    exit 0
fi
if timeout 60 "$DOCKER" pull -q "$BASE_IMAGE" >/dev/null 2>&1; then
    exit 0
fi
# The Debian suite comes from the tag; only the slim images of the releases the images are built on.
case "$BASE_IMAGE" in
    debian:bookworm-slim) suite=bookworm ;;
    debian:trixie-slim) suite=trixie ;;
    *)
        echo "base-image: cannot pull $BASE_IMAGE and can only build debian:bookworm-slim or debian:trixie-slim" >&2
        exit 2
        ;;
esac
echo "base-image: cannot pull $BASE_IMAGE; building it with debootstrap ($suite)" >&2
command -v debootstrap >/dev/null || { echo "base-image: debootstrap is not installed" >&2; exit 1; }

rootfs=$(mktemp -d)
trap 'rm -rf "$rootfs"' EXIT
debootstrap --variant=minbase "$suite" "$rootfs" "$MIRROR" >/dev/null

# What the official slim image leaves out: documentation, manuals, translations, apt caches.
cat >"$rootfs/etc/dpkg/dpkg.cfg.d/docker" <<'CFG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
CFG
cat >"$rootfs/etc/apt/apt.conf.d/docker-clean" <<'CFG'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CFG
echo 'Acquire::Languages "none";' >"$rootfs/etc/apt/apt.conf.d/docker-no-languages"
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
       "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
find "$rootfs/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

tar -C "$rootfs" -c . | "$DOCKER" import \
    --change 'CMD ["bash"]' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    - "$BASE_IMAGE" >/dev/null
"$DOCKER" image ls "$BASE_IMAGE"
