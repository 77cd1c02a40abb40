"""Smoke over TLS: the API contract through the load balancer, TLS policy, redirect, HSTS,
and Prometheus scraping every replica, HAProxy and PostgreSQL."""

from __future__ import annotations

import json
import socket
import ssl
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

import httpx
import yaml

from tests.e2e import load as loadgen
from tests.e2e.conftest import STACK_URL
from tests.e2e.report import conclude

PROMETHEUS_CONFIG = Path("deploy/docker/prometheus/prometheus.yml")
# Every replica, both HAProxies, the exporter and both Patroni members must be scraped.
EXPECTED_TARGETS = {"registro": 3, "haproxy": 2, "postgres": 1, "patroni": 2}
# A target just started may miss a scrape; one still down after this many is a defect.
SCRAPE_INTERVALS_ALLOWED = 6


def scrape_deadline_s() -> float:
    interval = yaml.safe_load(PROMETHEUS_CONFIG.read_text())["global"]["scrape_interval"]
    return SCRAPE_INTERVALS_ALLOWED * float(interval.removesuffix("s"))


def tls_handshake(ca: str, version: ssl.TLSVersion) -> str:
    """Offer exactly one protocol version; return the negotiated one or the error."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca)
    context.minimum_version = context.maximum_version = version
    context.set_ciphers("ALL:@SECLEVEL=0")  # let the client offer old protocols at all
    try:
        with (
            socket.create_connection(("127.0.0.1", 8443), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            return str(tls.version())
    except ssl.SSLError as exc:
        return f"refused: {exc.reason}"


def test_smoke_over_tls(ca: str, api_key: str) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    checks: dict[str, bool] = {}
    with (
        loadgen.Load(
            base_url=STACK_URL, ca=ca, key=api_key, rate=20, concurrency=4, max_seconds=120
        ) as load,
        httpx.Client(
            base_url=STACK_URL, verify=ssl.create_default_context(cafile=ca), timeout=10
        ) as api,
    ):
        load.mark("API contract checks")
        created = api.post("/data", json={"name": name}, headers=auth)
        body = created.json()
        checks["POST /data 200 with message, id, name"] = (
            created.status_code == 200
            and body.get("message") == "Data inserted successfully"
            and body.get("name") == name
            and isinstance(body.get("id"), int)
        )
        rid = body.get("id")
        dup = api.post("/data", json={"name": name}, headers=auth)
        checks["duplicate POST 409"] = dup.status_code == 409 and dup.json() == {
            "message": "Data already exists"
        }
        checks["invalid POST 422 with message"] = (
            r := api.post("/data", json={"nom": 1}, headers=auth)
        ).status_code == 422 and "message" in r.json()
        checks["write without key 401"] = (
            api.post("/data", json={"name": name + "x"}).status_code == 401
        )
        checks["GET /data/{id} 200"] = api.get(f"/data/{rid}").json() == {"id": rid, "name": name}
        checks["GET /data/{id} unknown 404"] = (
            r := api.get("/data/2147483000")
        ).status_code == 404 and r.json() == {"message": "Data not found"}
        second = api.post("/data", json={"name": name + "-2"}, headers=auth)
        page = api.get("/data", params={"limit": 1})
        checks["GET /data paginated with Link rel=next"] = (
            second.status_code == 200
            and page.status_code == 200
            and len(page.json()) == 1
            and 'rel="next"' in page.headers.get("link", "")
        )
        renamed = api.put(f"/data/{rid}", json={"name": name + "-b"}, headers=auth)
        checks["PUT 200"] = renamed.status_code == 200 and renamed.json()["name"] == name + "-b"
        checks["PUT unknown 404"] = (
            api.put("/data/2147483000", json={"name": name + "-c"}, headers=auth).status_code == 404
        )
        checks["DELETE 200"] = (
            r := api.delete(f"/data/{rid}", headers=auth)
        ).status_code == 200 and r.json() == {"message": "Data deleted successfully"}
        checks["DELETE again 404"] = api.delete(f"/data/{rid}", headers=auth).status_code == 404
        audit = api.get("/audit", headers=auth)
        checks["GET /audit (admin) lists the delete, update, create"] = (
            audit.status_code == 200
            and [e["action"] for e in audit.json() if e["record_id"] == rid][:3]
            == ["delete", "update", "create"]
        )
        checks["GET /audit without key 401"] = api.get("/audit").status_code in (401, 403)
        checks["/livez 200"] = api.get("/livez").status_code == 200
        checks["/readyz 200"] = api.get("/readyz").status_code == 200
        version = api.get("/version").json()
        checks["/version has version, commit, build_time"] = set(version) >= {
            "version",
            "commit",
            "build_time",
        }
        checks["/metrics Prometheus text"] = (
            "registro_http_requests_total" in api.get("/metrics").text
        )
        checks["/openapi.json"] = (
            api.get("/openapi.json").json().get("openapi", "").startswith("3.")
        )
        checks["/docs 200"] = api.get("/docs").status_code == 200
        response = api.get("/version")
        hsts = response.headers.get("strict-transport-security", "")
        checks["HSTS max-age >= 1 year"] = "max-age=31536000" in hsts

        redirect = httpx.get(
            "http://127.0.0.1:8080/data?limit=1", follow_redirects=False, timeout=5
        )
        checks["HTTP 301 to the same URL over HTTPS"] = (
            redirect.status_code == 301
            and redirect.headers.get("location") == "https://127.0.0.1:8443/data?limit=1"
        )

        load.mark("TLS handshakes")
        handshakes = {
            v.name: tls_handshake(ca, v)
            for v in (
                ssl.TLSVersion.TLSv1,
                ssl.TLSVersion.TLSv1_1,
                ssl.TLSVersion.TLSv1_2,
                ssl.TLSVersion.TLSv1_3,
            )
        }
        checks["TLS 1.0 refused"] = handshakes["TLSv1"].startswith("refused")
        checks["TLS 1.1 refused"] = handshakes["TLSv1_1"].startswith("refused")
        checks["TLS 1.2 accepted"] = handshakes["TLSv1_2"] == "TLSv1.2"
        checks["TLS 1.3 accepted"] = handshakes["TLSv1_3"] == "TLSv1.3"

        load.mark("Prometheus targets")
        targets, waited = scraped_targets(EXPECTED_TARGETS, scrape_deadline_s())
        for job, expected in EXPECTED_TARGETS.items():
            up = [t for t in targets if t["labels"]["job"] == job and t["health"] == "up"]
            checks[f"Prometheus scrapes {expected} {job} target(s), all up"] = len(up) == expected
        stable = [t for t in targets if t["labels"]["job"] == "registro"]
        checks["replica targets labelled service=registro-stable"] = all(
            t["labels"].get("service") == "registro-stable" for t in stable
        )
        load.mark("checks done")
        load.wait(10)  # keep the background load going for a while after the checks
        results = load.stop()

    load_summary = loadgen.summary(results)
    checks["no failed request in the background load"] = load_summary["failed"] == 0
    conclude(
        "smoke",
        "Smoke over TLS",
        "The API contract through HAProxy over HTTPS, the TLS policy (each protocol version "
        "offered "
        "alone), the HTTP redirect, HSTS, and Prometheus's targets, under light background load.",
        {
            "contract checks": sum(1 for k in checks if not k.startswith(("TLS", "Prometheus"))),
            "handshakes": handshakes,
            "background load": load_summary,
            "seconds until every target was scraped up": waited,
            "targets not up": {
                t["scrapeUrl"]: t.get("lastError") or t["health"]
                for t in targets
                if t["labels"]["job"] in EXPECTED_TARGETS and t["health"] != "up"
            },
        },
        checks,
        load=load,
    )


def prometheus_targets() -> list[dict]:
    with urllib.request.urlopen(
        "http://127.0.0.1:9090/api/v1/targets?state=active", timeout=10
    ) as r:
        return json.load(r)["data"]["activeTargets"]


def scraped_targets(expected: dict[str, int], deadline_s: float) -> tuple[list[dict], float]:
    """Poll until each job has its expected number of targets up, or the deadline passes.

    A target's health is that of its last scrape, and Prometheus may have last scraped a
    replica a moment before it was ready: one failed scrape at start-up is not a defect, a
    target still down after several scrape intervals is. Returns the last targets seen and
    the seconds waited.
    """
    start = time.monotonic()
    while True:
        targets = prometheus_targets()
        waited = round(time.monotonic() - start, 1)
        all_up = all(
            sum(1 for t in targets if t["labels"]["job"] == job and t["health"] == "up") == count
            for job, count in expected.items()
        )
        if all_up or waited >= deadline_s:
            return targets, waited
        time.sleep(1)
