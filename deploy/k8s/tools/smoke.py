"""A short smoke test of a deployed registro: `make smoke URL=https://...`.

First it waits (SMOKE_WAIT_SECONDS, default 600) until the name resolves and /readyz answers
200 through the load balancer: right after a release ExternalDNS may not have published the name
yet and the ALB answers 503 until its targets pass their health checks.

Then, read-only by default: health, version, a page of data, and (for an https URL) the plain-HTTP
redirect; only paths the Ingress routes to the service (deploy/k8s/base/ingress.yaml: the ALB
itself answers /openapi.json, /docs and /metrics with a 404). With SMOKE_API_KEY (a key with
read,write scopes) it also creates, reads and deletes one record; without it, it checks that
writes are refused. EXPECT_COMMIT makes it check that the deployed build is the one just released.
Exits non-zero, naming the first failed check, on any failure.

`make measure` (tests/e2e/measure.py) runs the same checks through `run`, with its own CA and
plain-HTTP address (the local stack's listen on other ports than 443 and 80).
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
import time
import uuid
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import httpx


def check(condition: bool, what: str, held: list[str]) -> None:
    if not condition:
        raise SystemExit(f"smoke: FAILED {what}")
    print(f"smoke: ok     {what}")
    held.append(what)


def plain_http(url: str) -> str:
    """The plain-HTTP address in front of an https URL: the same host on port 80."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    return urlunsplit(parts._replace(scheme="http", netloc=f"[{host}]" if ":" in host else host))


def run(
    url: str,
    *,
    key: str = "",
    expect_commit: str = "",
    verify: ssl.SSLContext | bool = True,
    http_url: str | None = None,
) -> list[str]:
    """Run the checks against `url`; return the ones that held, or raise SystemExit naming the
    first that did not. `http_url`: where plain HTTP is served (default: `plain_http(url)`)."""
    url = url.rstrip("/")
    held: list[str] = []
    with httpx.Client(base_url=url, timeout=10, follow_redirects=False, verify=verify) as client:
        for path in ("/livez", "/readyz"):
            check(client.get(path).status_code == 200, f"GET {path} is 200", held)
        version = client.get("/version")
        check(
            version.status_code == 200
            and {"version", "commit", "build_time"} <= version.json().keys(),
            "GET /version",
            held,
        )
        if expect_commit:
            check(
                version.json()["commit"] == expect_commit,
                f"the deployed commit is {expect_commit}",
                held,
            )
        page = client.get("/data", params={"limit": 1})
        check(
            page.status_code == 200 and isinstance(page.json(), list),
            "GET /data?limit=1 is a JSON list",
            held,
        )
        if urlsplit(url).scheme == "https":
            plain = (http_url or plain_http(url)).rstrip("/") + "/livez"
            redirect = httpx.get(plain, timeout=10, follow_redirects=False)
            check(
                redirect.status_code in (301, 302, 307, 308)
                and redirect.headers["location"].startswith("https://"),
                "plain HTTP redirects to HTTPS",
                held,
            )
        name = f"smoke-{uuid.uuid4().hex[:12]}"
        if not key:
            check(
                client.post("/data", json={"name": name}).status_code == 401,
                "writes without a key are refused",
                held,
            )
            return held
        auth = {"Authorization": f"Bearer {key}"}
        created = client.post("/data", json={"name": name}, headers=auth)
        check(
            created.status_code == 200 and created.json()["name"] == name,
            "POST /data creates a record",
            held,
        )
        record = f"/data/{created.json()['id']}"
        check(
            client.get(record, headers=auth).json().get("name") == name,
            f"GET {record} reads it back",
            held,
        )
        check(
            client.delete(record, headers=auth).status_code == 200,
            f"DELETE {record} removes it",
            held,
        )
        check(
            client.get(record, headers=auth).status_code == 404, f"GET {record} is then 404", held
        )
    return held


def resolves(host: str) -> bool:
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror:
        return False
    return True


def readiness(url: str) -> int:
    """The status of GET url/readyz, or 0 when nothing answers."""
    try:
        return httpx.get(url.rstrip("/") + "/readyz", timeout=10).status_code
    except httpx.HTTPError:
        return 0


def wait_until_serving(
    url: str,
    *,
    deadline_seconds: float,
    poll_seconds: float,
    resolve: Callable[[str], bool] = resolves,
    ready: Callable[[str], int] = readiness,
) -> None:
    """Poll until the URL's name resolves and /readyz is 200; SystemExit naming the last state
    at the deadline."""
    host = urlsplit(url).hostname or ""
    deadline = time.monotonic() + deadline_seconds
    while True:
        if not resolve(host):
            state = f"{host} does not resolve"
        else:
            status = ready(url)
            if status == 200:
                print(f"smoke: ok     {url} is serving")
                return
            state = f"GET /readyz answers {status or 'nothing'}"
        if time.monotonic() >= deadline:
            raise SystemExit(
                f"smoke: FAILED {url} not serving after {deadline_seconds:g} s: {state}"
            )
        print(f"smoke: wait   {state}")
        time.sleep(poll_seconds)


def main(url: str) -> int:
    wait_until_serving(
        url,
        deadline_seconds=float(os.environ.get("SMOKE_WAIT_SECONDS", "600")),
        poll_seconds=float(os.environ.get("SMOKE_POLL_SECONDS", "5")),
    )
    run(
        url,
        key=os.environ.get("SMOKE_API_KEY", ""),
        expect_commit=os.environ.get("EXPECT_COMMIT", ""),
    )
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: smoke.py URL")
    sys.exit(main(sys.argv[1]))
