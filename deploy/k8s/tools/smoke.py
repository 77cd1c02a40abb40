"""A short smoke test of a deployed registro: `make smoke URL=https://...`.

Read-only by default: health, version, API description, a page of data, and (for an https URL)
the plain-HTTP redirect. With SMOKE_API_KEY (a key with read,write scopes) it also creates,
reads and deletes one record; without it, it checks that writes are refused. EXPECT_COMMIT makes
it check that the deployed build is the one just released.
Exits non-zero, naming the first failed check, on any failure.
"""

from __future__ import annotations

import os
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import httpx


def check(condition: bool, what: str) -> None:
    if not condition:
        raise SystemExit(f"smoke: FAILED {what}")
    print(f"smoke: ok     {what}")


def main(url: str) -> int:
    url = url.rstrip("/")
    key = os.environ.get("SMOKE_API_KEY", "")
    expect_commit = os.environ.get("EXPECT_COMMIT", "")
    with httpx.Client(base_url=url, timeout=10, follow_redirects=False) as client:
        for path in ("/livez", "/readyz"):
            check(client.get(path).status_code == 200, f"GET {path} is 200")
        version = client.get("/version")
        check(
            version.status_code == 200
            and {"version", "commit", "build_time"} <= version.json().keys(),
            "GET /version",
        )
        if expect_commit:
            check(
                version.json()["commit"] == expect_commit, f"the deployed commit is {expect_commit}"
            )
        check(
            "/data" in client.get("/openapi.json").json()["paths"],
            "GET /openapi.json describes /data",
        )
        page = client.get("/data", params={"limit": 1})
        check(
            page.status_code == 200 and isinstance(page.json(), list),
            "GET /data?limit=1 is a JSON list",
        )
        if urlsplit(url).scheme == "https":
            plain = urlunsplit(urlsplit(url)._replace(scheme="http")) + "/livez"
            redirect = httpx.get(plain, timeout=10, follow_redirects=False)
            check(
                redirect.status_code in (301, 302, 307, 308)
                and redirect.headers["location"].startswith("https://"),
                "plain HTTP redirects to HTTPS",
            )
        name = f"smoke-{uuid.uuid4().hex[:12]}"
        if not key:
            check(
                client.post("/data", json={"name": name}).status_code == 401,
                "writes without a key are refused",
            )
            return 0
        auth = {"Authorization": f"Bearer {key}"}
        created = client.post("/data", json={"name": name}, headers=auth)
        check(
            created.status_code == 200 and created.json()["name"] == name,
            "POST /data creates a record",
        )
        record = f"/data/{created.json()['id']}"
        check(
            client.get(record, headers=auth).json().get("name") == name,
            f"GET {record} reads it back",
        )
        check(client.delete(record, headers=auth).status_code == 200, f"DELETE {record} removes it")
        check(client.get(record, headers=auth).status_code == 404, f"GET {record} is then 404")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: smoke.py URL")
    sys.exit(main(sys.argv[1]))
