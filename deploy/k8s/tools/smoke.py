"""A short smoke test of a deployed registro: `make smoke URL=https://...`.

Read-only by default: health, version, API description, a page of data, and (for an https URL)
the plain-HTTP redirect. With SMOKE_API_KEY (a key with read,write scopes) it also creates,
reads and deletes one record; without it, it checks that writes are refused. EXPECT_COMMIT makes
it check that the deployed build is the one just released.
Exits non-zero, naming the first failed check, on any failure.

`make measure` (tests/e2e/measure.py) runs the same checks through `run`, with its own CA and
plain-HTTP address (the local stack's listen on other ports than 443 and 80).
"""

from __future__ import annotations

import os
import ssl
import sys
import uuid
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
        check(
            "/data" in client.get("/openapi.json").json()["paths"],
            "GET /openapi.json describes /data",
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


def main(url: str) -> int:
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
