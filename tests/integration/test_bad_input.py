"""Bad input gets a JSON 4xx with a message, and changes nothing in the database."""

from __future__ import annotations

import httpx
import pytest

NOT_JSON = {"content-type": "application/json"}

BAD_BODIES = [
    ("malformed json", b'{"name": ', NOT_JSON, 422),
    ("not an object", b'["alpha"]', NOT_JSON, 422),
    ("number for name", b'{"name": 42}', NOT_JSON, 422),
    ("null name", b'{"name": null}', NOT_JSON, 422),
    ("missing name", b"{}", NOT_JSON, 422),
    ("extra field", b'{"name": "a", "admin": true}', NOT_JSON, 422),
    ("blank name", b'{"name": "   "}', NOT_JSON, 422),
    ("empty name", b'{"name": ""}', NOT_JSON, 422),
    ("101 characters", b'{"name": "' + b"x" * 101 + b'"}', NOT_JSON, 422),
    ("control character", b'{"name": "a\\u0007b"}', NOT_JSON, 422),
    ("newline", b'{"name": "a\\nb"}', NOT_JSON, 422),
    ("lone surrogate", b'{"name": "\\ud800"}', NOT_JSON, 422),
    ("nul byte", b'{"name": "a\\u0000"}', NOT_JSON, 422),
    ("invalid utf-8", b'{"name": "\xff\xfe"}', NOT_JSON, 422),
    ("duplicate keys", b'{"name": "a", "name": "b"}', NOT_JSON, 422),
    ("duplicate keys, one invalid", b'{"name": 1, "name": "b"}', NOT_JSON, 422),
    ("NaN", b'{"name": NaN}', NOT_JSON, 422),
    ("nested too deeply", b"[" * 30_000 + b"]" * 30_000, NOT_JSON, 422),
    ("zero-width space only", b'{"name": "\\u200b"}', NOT_JSON, 422),
    ("right-to-left override", b'{"name": "abc\\u202edcba"}', NOT_JSON, 422),
    ("private use", b'{"name": "\\ue000"}', NOT_JSON, 422),
    ("unassigned", b'{"name": "\\u0378"}', NOT_JSON, 422),
    ("101 once trimmed", b'{"name": " ' + b"x" * 101 + b' "}', NOT_JSON, 422),
    ("form encoded", b"name=a", {"content-type": "application/x-www-form-urlencoded"}, 415),
    ("text/plain", b'{"name": "a"}', {"content-type": "text/plain"}, 415),
    ("no content type", b'{"name": "a"}', {}, 415),
    ("empty body", b"", NOT_JSON, 422),
    ("oversize body", b'{"name": "' + b"x" * 70_000 + b'"}', NOT_JSON, 413),
]


async def _count(client: httpx.AsyncClient) -> int:
    return len((await client.get("/data?limit=1000")).json())


@pytest.mark.parametrize(
    ("case", "body", "headers", "status"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES]
)
async def test_bad_bodies_are_rejected_without_a_change(
    client: httpx.AsyncClient, case: str, body: bytes, headers: dict[str, str], status: int
) -> None:
    existing = (await client.post("/data", json={"name": "keep"})).json()["id"]
    for method, url in (("POST", "/data"), ("PUT", f"/data/{existing}")):
        response = await client.request(method, url, content=body, headers=headers)
        assert response.status_code == status, (method, response.text)
        assert response.headers["content-type"] == "application/json"
        assert response.json()["message"]
    assert (await client.get(f"/data/{existing}")).json()["name"] == "keep"
    assert await _count(client) == 1


async def test_a_streamed_body_over_the_limit_is_413(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the limit is counted as the body arrives
        for _ in range(10):
            yield b"x" * 10_000

    response = await client.post("/data", content=chunks(), headers=NOT_JSON)
    assert response.status_code == 413
    assert await _count(client) == 0


async def test_a_chunked_body_without_content_type_is_415(client: httpx.AsyncClient) -> None:
    """Like the same body sent with a Content-Length."""

    async def chunks():  # no Content-Length: sent with Transfer-Encoding: chunked
        yield b'{"name": "a"}'

    for method, url in (("POST", "/data"), ("PUT", "/data/1")):
        request = client.build_request(method, url, content=chunks())
        assert request.headers["transfer-encoding"] == "chunked"
        assert "content-type" not in request.headers
        response = await client.send(request)
        assert response.status_code == 415, (method, response.text)
        assert response.json()["message"]
    assert await _count(client) == 0


BODILESS = [("DELETE", "/data/{id}"), ("GET", "/data/{id}"), ("GET", "/data"), ("HEAD", "/livez")]


@pytest.mark.parametrize(("method", "path"), BODILESS, ids=[" ".join(m) for m in BODILESS])
async def test_a_body_where_none_is_expected_is_refused_unread(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    """Past REGISTRO_MAX_BODY_BYTES it is 413, as for any method; below it, 400: these methods
    take no body (RFC 9110 9.3.1, 9.3.5: it has no defined semantics). The idempotency key
    makes DELETE hash its body (api/idempotency_header.py), which read a body of any size whole."""
    existing = (await client.post("/data", json={"name": "keep"})).json()["id"]
    url = path.format(id=existing)
    headers = {"Idempotency-Key": "body-on-delete", **NOT_JSON}

    async def streamed():  # chunked, no Content-Length: the body cannot be judged by its head
        for _ in range(10):
            yield b"x" * 10_000

    for content, status in ((b"x" * 70_000, 413), (b"{}", 400), (streamed(), 400)):
        response = await client.request(method, url, content=content, headers=headers)
        assert response.status_code == status, (method, response.text)
        assert response.headers["content-type"] == "application/json"
        if method != "HEAD":
            assert response.json()["message"]
    assert (await client.get(f"/data/{existing}")).json()["name"] == "keep"
    assert await _count(client) == 1
    # Content-Length: 0, as some clients send on DELETE, is no body.
    deleted = await client.request("DELETE", f"/data/{existing}", headers={"content-length": "0"})
    assert deleted.status_code == 200, deleted.text


@pytest.mark.parametrize("method", ["TRACE", "OPTIONS", "PROPFIND"])
async def test_a_method_no_route_has_is_405_and_its_body_still_bounded(
    client: httpx.AsyncClient, method: str
) -> None:
    """Not refused as a body where none is expected: the method is the error (schemathesis's
    ST204 expects 405 for an undeclared method, body or not)."""
    small = await client.request(method, "/data", content=b'{"name": "a"}', headers=NOT_JSON)
    assert small.status_code == 405, small.text
    large = await client.request(method, "/data", content=b"x" * 70_000, headers=NOT_JSON)
    assert large.status_code == 413, large.text
    # A method that takes no body, on a path without it: the method is still the error.
    wrong = await client.request("DELETE", "/data", content=b'{"name": "a"}', headers=NOT_JSON)
    assert wrong.status_code == 405, wrong.text


@pytest.mark.parametrize(
    "record_id",
    [
        "0",
        "-1",
        "abc",
        "1.5",
        "9223372036854775808",
        "99999999999999999999999999",
        "%00",
        "1e3",
        "1" * 4301,  # past Python's int conversion limit
        "0" * 5000 + "1",
    ],
)
async def test_odd_ids_are_422(client: httpx.AsyncClient, record_id: str) -> None:
    for method in ("GET", "PUT", "DELETE"):
        kwargs = {"json": {"name": "x"}} if method == "PUT" else {}
        response = await client.request(method, f"/data/{record_id}", **kwargs)
        assert response.status_code == 422, (method, record_id)
        assert "message" in response.json()
    assert await _count(client) == 0


async def test_largest_id_is_a_clean_404(client: httpx.AsyncClient) -> None:
    response = await client.get("/data/9223372036854775807")
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [
        ("PATCH", "/data/1", 405),
        ("DELETE", "/data", 405),
        ("POST", "/data/1", 405),
        ("PUT", "/audit", 405),
        ("DELETE", "/audit", 405),
        ("GET", "/nope", 404),
    ],
)
async def test_wrong_methods_and_paths_are_json(
    client: httpx.AsyncClient, method: str, url: str, status: int
) -> None:
    # A body only where the method takes one: on GET or DELETE it is refused first (400).
    content = b"{}" if method in {"POST", "PUT", "PATCH"} else None
    response = await client.request(method, url, content=content, headers=NOT_JSON)
    assert response.status_code == status
    assert response.json()["message"]


@pytest.mark.parametrize("path", ["/data/", "/livez/", "/audit/", "/data/1/"])
async def test_a_trailing_slash_is_a_404_never_a_redirect_to_the_callers_host(
    client: httpx.AsyncClient, path: str
) -> None:
    """Starlette's router redirects /data/ to /data (Router.redirect_slashes) with a Location
    built from the request's Host header, which the caller writes: a redirect to any host."""
    response = await client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["message"]
