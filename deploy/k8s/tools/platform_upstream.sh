#!/usr/bin/env bash
# Build, from the chart repositories, the upstream charts and CRDs the platform tests read, in the
# layout of ../shared/upstream (for where that copy is absent: GitHub Actions, a fresh clone):
#   OUT/charts/<release>-<version>/        each chart of the table, as published
#   OUT/crds/external-secrets-<version>/   External Secrets' CRDs, rendered from its chart
# Usage: platform_upstream.sh HELM CHART_TABLE OUT
#
# The charts are pinned by version only, not by digest: the archives could not be downloaded
# where this was written, so no sha256 was ever checked against them. Each pull prints its
# archive's sha256, so that a run with network access gives the digests to pin.
set -euo pipefail

helm=$1 table=$2 out=$3
mkdir -p "$out/charts" "$out/crds"
work=$(mktemp -d "$out/.pull.XXXXXX")
trap 'rm -rf "$work"' EXIT

eso_version=
while read -r release _namespace version repository; do
  case $release in '' | '#'*) continue ;; esac
  if [ "$release" = external-secrets ]; then eso_version=$version; fi
  dest=$out/charts/$release-$version
  if [ -f "$dest/Chart.yaml" ]; then
    echo "platform-upstream: $dest is there"
    continue
  fi
  # The release is named after its chart (release.sh installs "$release" from the repository).
  "$helm" pull "$release" --repo "$repository" --version "$version" --destination "$work"
  archive=$work/$release-$version.tgz
  sum=$(sha256sum "$archive")
  echo "platform-upstream: $release $version from $repository (sha256 ${sum%% *})"
  mkdir "$work/$release"
  tar -xzf "$archive" -C "$work/$release"
  mv "$work/$release/$release" "$dest"
done <"$table"

# The published External Secrets chart carries its CRDs as templates (templates/crds/<kind>.yaml,
# generated in when the chart is packaged, each behind installCRDs), not in crds/: render them
# one file per template and keep those.
[ -n "$eso_version" ] || { echo "platform-upstream: no external-secrets in $table" >&2; exit 1; }
crds=$out/crds/external-secrets-$eso_version
if compgen -G "$crds/*.yaml" >/dev/null; then
  echo "platform-upstream: $crds is there"
  exit 0
fi
"$helm" template external-secrets "$out/charts/external-secrets-$eso_version" \
  --set installCRDs=true --output-dir "$work/render" >/dev/null
mkdir "$work/crds"
for file in "$work"/render/external-secrets/templates/crds/*.yaml; do
  if [ -f "$file" ] && grep -q '^kind: CustomResourceDefinition$' "$file"; then
    cp "$file" "$work/crds/"
  fi
done
if ! compgen -G "$work/crds/*.yaml" >/dev/null; then
  echo "platform-upstream: the external-secrets $eso_version chart rendered no CRDs" >&2
  exit 1
fi
rm -rf "$crds"
mv "$work/crds" "$crds"
echo "platform-upstream: $crds: $(find "$crds" -name '*.yaml' | wc -l) CRDs"
