#!/usr/bin/env bash
# Sign an image pushed to ECR, by digest, with the GitHub Actions workflow's own identity, and
# attest its SLSA provenance and its SBOM (make sign-image; docs/decisions/image-signing.md).
#
#   sign.sh ENV REPOSITORY@sha256:DIGEST COMMIT SBOM
#
# Keyless: cosign asks GitHub for the job's OIDC token (the job needs `id-token: write`), Fulcio
# issues a ten-minute certificate for the workflow's identity, Rekor logs each signature. cosign
# v2 writes sha256-<hex>.sig and .att beside the image (what deploy/image/verify.py and
# policy-controller read). An image that verifies already (a re-run) is left as it is. Needs
# cosign, the AWS CLI (a session that may push to the repository) and SUPPLY_PYTHON (a Python
# with cryptography; make passes .venvs/supply's).
set -euo pipefail
[ $# -eq 4 ] || { echo "usage: sign.sh ENV REPOSITORY@sha256:DIGEST COMMIT SBOM" >&2; exit 2; }
env=$1 image=$2 commit=$3 sbom=$4
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${SUPPLY_PYTHON:-python3}
verify() { (cd "$root" && exec "$python" -m deploy.image.verify "$image" --env "$env" --commit "$commit"); }

[[ $image =~ ^([0-9]{12})\.dkr\.ecr\.([a-z0-9-]+)\.amazonaws\.com/[a-z0-9._/-]+@sha256:[0-9a-f]{64}$ ]] \
  || { echo "sign.sh: not an ECR image by digest: $image" >&2; exit 2; }
region=${BASH_REMATCH[2]}
[ -s "$sbom" ] || { echo "sign.sh: no SBOM at $sbom (make sbom)" >&2; exit 2; }
if verify 2>/dev/null; then
  echo "sign.sh: $image is signed and attested already"
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
aws ecr get-login-password --region "$region" \
  | cosign login --username AWS --password-stdin "${image%%/*}"
(cd "$root" && exec "$python" -m deploy.image.provenance) > "$work/provenance.json"
cosign sign --yes "$image"
cosign attest --yes --type slsaprovenance1 --predicate "$work/provenance.json" "$image"
cosign attest --yes --type cyclonedx --predicate "$sbom" "$image"
verify
