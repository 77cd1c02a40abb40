"""`make platform-upstream` (deploy/k8s/tools/platform_upstream.sh) builds the layout the platform
tests read, from a chart repository: here one served on loopback, holding small charts made for
the test, so the script's pulling, naming and CRD rendering are checked offline.

A Helm chart repository is an index.yaml beside the chart archives, which `helm pull --repo`
reads (https://helm.sh/docs/topics/chart_repository/); the published External Secrets chart
carries its CRDs as templates behind installCRDs (external-secrets hack/helm.generate.sh).
"""

from __future__ import annotations

import functools
import subprocess
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from k8s_support import HELM, K8S, UPSTREAM, Chart, require

SCRIPT = K8S / "tools" / "platform_upstream.sh"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "widgets.example.com"},
    "spec": {
        "group": "example.com",
        "names": {"kind": "Widget", "plural": "widgets", "singular": "widget"},
        "scope": "Namespaced",
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {}}],
    },
}


def make_chart(root: Path, name: str, version: str, crd_gate: str | None = None) -> Path:
    chart = root / name
    (chart / "templates" / "crds").mkdir(parents=True)
    meta = {"apiVersion": "v2", "name": name, "version": version}
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta))
    (chart / "values.yaml").write_text("installCRDs: false\n")
    if crd_gate:
        body = f"{{{{- if {crd_gate} }}}}\n{yaml.safe_dump(CRD)}{{{{- end }}}}\n"
        (chart / "templates" / "crds" / "widget.yaml").write_text(body)
    return chart


@pytest.fixture()
def repository(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """An empty chart repository directory and the loopback URL it is served at."""
    require(bool(HELM) and Path(HELM).exists(), "helm is not installed (make helm)")
    served = tmp_path / "repo"
    served.mkdir()
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield served, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def publish(served: Path, url: str, charts: list[Path]) -> None:
    for chart in charts:
        subprocess.run([HELM, "package", str(chart), "-d", str(served)], check=True, text=True)
    subprocess.run([HELM, "repo", "index", str(served), "--url", url], check=True)


def build(tmp_path: Path, table: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "charts").write_text(table)
    env = {
        "PATH": "/usr/bin:/bin",
        "HOME": str(tmp_path),
        "HELM_CACHE_HOME": str(tmp_path / "helm-cache"),
        "HELM_CONFIG_HOME": str(tmp_path / "helm-config"),
        "HELM_DATA_HOME": str(tmp_path / "helm-data"),
    }
    return subprocess.run(
        [str(SCRIPT), HELM, str(tmp_path / "charts"), str(tmp_path / "out")],
        capture_output=True,
        text=True,
        env=env,
    )


def test_builds_the_layout_the_platform_tests_read(
    tmp_path: Path, repository: tuple[Path, str]
) -> None:
    served, url = repository
    source = tmp_path / "source"
    publish(
        served,
        url,
        [
            make_chart(source, "external-secrets", "2.9.0", ".Values.installCRDs"),
            make_chart(source, "argo-rollouts", "2.41.0"),
        ],
    )
    table = (
        "# release namespace version repository\n"
        f"external-secrets  external-secrets  2.9.0   {url}\n"
        f"argo-rollouts     argo-rollouts     2.41.0  {url}\n"
    )
    result = build(tmp_path, table)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "out"
    for release, version in (("external-secrets", "2.9.0"), ("argo-rollouts", "2.41.0")):
        chart = Chart(release, "-", version, url).source.relative_to(UPSTREAM)
        meta = yaml.safe_load((out / chart / "Chart.yaml").read_text())
        assert (meta["name"], meta["version"]) == (release, version)
    crds = sorted((out / "crds" / "external-secrets-2.9.0").glob("*.yaml"))
    assert [
        d["metadata"]["name"] for p in crds for d in yaml.safe_load_all(p.read_text()) if d
    ] == ["widgets.example.com"]
    again = build(tmp_path, table)
    assert again.returncode == 0, again.stderr
    assert "is there" in again.stdout


def test_a_chart_that_renders_no_crds_is_an_error(
    tmp_path: Path, repository: tuple[Path, str]
) -> None:
    """Rendered with installCRDs=true and nothing else, a CRD behind another flag stays out: the
    script must stop rather than leave the CRD directory empty."""
    served, url = repository
    publish(served, url, [make_chart(tmp_path / "source", "external-secrets", "2.9.0", "false")])
    result = build(tmp_path, f"external-secrets external-secrets 2.9.0 {url}\n")
    assert result.returncode != 0
    assert "rendered no CRDs" in result.stderr
    assert not (tmp_path / "out" / "crds" / "external-secrets-2.9.0").exists()
