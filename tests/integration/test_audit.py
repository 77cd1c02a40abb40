"""The audit trail: one entry per successful write, in the same transaction, append-only."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import orjson
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from registro.app import OPERATIONS
from registro.store.urls import sqlalchemy_url
from registro.telemetry.logs import audit_log
from tests.conftest import ClientFactory, add_key, bearer, new_postgres_database
from tests.support.service import running_service


async def test_every_successful_write_is_audited_with_who_what_and_where(
    make_client: ClientFactory, make_key
) -> None:
    writer = await make_key("importer", "write")
    admin = await make_key("auditor", "admin")
    client = await make_client(auth="writes")
    headers = {**bearer(writer), "X-Request-ID": "req-42"}

    created = (await client.post("/data", json={"name": "a"}, headers=headers)).json()
    await client.post("/data", json={"name": "a"}, headers=headers)  # 409: not audited
    await client.put(f"/data/{created['id']}", json={"name": "b"}, headers=headers)
    await client.delete(f"/data/{created['id']}", headers=headers)
    await client.delete(f"/data/{created['id']}", headers=headers)  # 404: not audited

    response = await client.get("/audit", headers=bearer(admin))
    assert response.status_code == 200
    entries = response.json()
    assert [e["action"] for e in entries] == ["delete", "update", "create"]
    assert {e["actor"] for e in entries} == {"importer"}
    assert {e["caller_request_id"] for e in entries} == {"req-42"}
    assert len({e["request_id"] for e in entries}) == 3  # the service's own, one per request
    assert {e["client"] for e in entries} == {"203.0.113.7"}
    assert {e["record_id"] for e in entries} == {created["id"]}
    delete, update, create = entries
    assert create["before"] is None and create["after"] == {"id": created["id"], "name": "a"}
    assert update["before"]["name"] == "a" and update["after"]["name"] == "b"
    assert delete["before"]["name"] == "b" and delete["after"] is None


class _Lines:
    """Stands in for the log writer: keeps the lines offered to it, parsed."""

    def __init__(self) -> None:
        self.entries: list[dict[str, object]] = []

    def offer(self, line: bytes) -> None:
        self.entries.append(orjson.loads(line))


async def test_each_write_records_and_logs_the_audit_action_declared_at_its_handler(
    client: httpx.AsyncClient, make_key, monkeypatch: pytest.MonkeyPatch
) -> None:
    declared = {(op.method, op.path): op.audit for op in OPERATIONS if op.audit}
    assert declared == {
        ("POST", "/data"): "create",
        ("PUT", "/data/{id}"): "update",
        ("DELETE", "/data/{id}"): "delete",
    }
    admin = await make_key("auditor", "admin")
    lines = _Lines()
    monkeypatch.setattr(audit_log, "writer", lines)
    monkeypatch.setattr(audit_log, "enabled", True)
    record_id = (await client.post("/data", json={"name": "a"})).json()["id"]
    await client.put(f"/data/{record_id}", json={"name": "b"})
    await client.delete(f"/data/{record_id}")

    stored = [e["action"] for e in (await client.get("/audit", headers=bearer(admin))).json()]
    logged = [e["action"] for e in lines.entries if e["logger"] == "registro.audit"]
    assert stored[::-1] == logged == list(declared.values())


async def test_anonymous_writes_are_audited_as_anonymous(
    client: httpx.AsyncClient, make_key
) -> None:
    admin = await make_key("auditor", "admin")
    await client.post("/data", json={"name": "a"})
    entries = (await client.get("/audit", headers=bearer(admin))).json()
    assert [e["actor"] for e in entries] == ["anonymous"]


async def test_audit_needs_an_admin_key_even_with_auth_off(
    client: httpx.AsyncClient, make_key
) -> None:
    writer = await make_key("importer", "read", "write")
    assert (await client.get("/audit")).status_code == 401
    assert (await client.get("/audit", headers=bearer(writer))).status_code == 403


async def test_audit_is_paginated_newest_first(client: httpx.AsyncClient, make_key) -> None:
    admin = await make_key("auditor", "admin")
    for i in range(5):
        await client.post("/data", json={"name": f"n{i}"})
    pages = []
    url: str | None = "/audit?limit=2"
    while url:
        response = await client.get(url, headers=bearer(admin))
        pages.append([e["id"] for e in response.json()])
        url = response.links.get("next", {}).get("url")
    assert [len(page) for page in pages] == [2, 2, 1]
    ids = [i for page in pages for i in page]
    assert ids == sorted(ids, reverse=True) and len(set(ids)) == 5


async def test_the_first_page_leaves_before_out_and_an_empty_one_is_422(
    client: httpx.AsyncClient, make_key
) -> None:
    """`before` is an audit id (an integer from 1); an empty value is not one, on /audit as
    `after=` is not on /data. README's `GET /audit?limit=100&before=` stood for "before= an id":
    the example was wrong (issue 17, defect 11), not the service."""
    admin = await make_key("auditor", "admin")
    await client.post("/data", json={"name": "n"})
    first = await client.get("/audit?limit=100", headers=bearer(admin))
    assert first.status_code == 200 and len(first.json()) == 1
    older = await client.get(
        f"/audit?limit=100&before={first.json()[0]['id']}", headers=bearer(admin)
    )
    assert older.status_code == 200 and older.json() == []
    empty = await client.get("/audit?limit=100&before=", headers=bearer(admin))
    assert empty.status_code == 422
    assert "query.before" in empty.json()["message"]


@pytest.mark.parametrize("statement", ["UPDATE audit SET actor = 'mallory'", "DELETE FROM audit"])
async def test_the_database_refuses_to_change_audit_rows(
    client: httpx.AsyncClient, database_url: str, statement: str
) -> None:
    await client.post("/data", json={"name": "a"})
    engine = create_async_engine(sqlalchemy_url(database_url))
    try:
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            async with engine.begin() as connection:
                await connection.execute(sa.text(statement))
        async with engine.connect() as connection:
            actors = (await connection.execute(sa.text("SELECT actor FROM audit"))).scalars()
            assert list(actors) == ["anonymous"]
    finally:
        await engine.dispose()


async def test_the_callers_request_id_is_kept_beside_the_services_if_plain_and_short(
    client: httpx.AsyncClient, make_key
) -> None:
    admin = await make_key("auditor", "admin")
    sent = ["r" * 128, "r" * 129, 'x" injected', None]
    for i, rid in enumerate(sent):
        headers = {"X-Request-ID": rid} if rid is not None else {}
        response = await client.post("/data", json={"name": f"n{i}"}, headers=headers)
        assert response.status_code == 200
    entries = (await client.get("/audit", headers=bearer(admin))).json()[::-1]
    assert [e["caller_request_id"] for e in entries] == ["r" * 128, None, None, None]
    assert all(len(e["request_id"]) == 32 for e in entries)


async def test_a_rename_to_the_same_name_changes_nothing_and_writes_no_entry(
    client: httpx.AsyncClient, make_key
) -> None:
    admin = await make_key("auditor", "admin")
    created = (await client.post("/data", json={"name": "same"})).json()
    again = await client.put(f"/data/{created['id']}", json={"name": "  same "})
    assert again.status_code == 200
    assert again.json() == {"id": created["id"], "name": "same"}
    entries = (await client.get("/audit", headers=bearer(admin))).json()
    assert [e["action"] for e in entries] == ["create"]
    renamed = await client.put(f"/data/{created['id']}", json={"name": "other"})
    assert renamed.json() == {"id": created["id"], "name": "other"}
    entries = (await client.get("/audit", headers=bearer(admin))).json()
    assert [e["action"] for e in entries] == ["update", "create"]
    assert (await client.put("/data/999999", json={"name": "same"})).status_code == 404


@pytest.mark.postgres
def test_the_client_address_is_the_rightmost_untrusted_hop_and_always_an_address(
    postgres_server: str, postgres_template: str, tmp_path: Path
) -> None:
    """Through uvicorn's proxy headers, as served: the peer (127.0.0.1) is a trusted proxy, so
    X-Forwarded-For is read from its right end. The leftmost entry is the caller's to choose;
    an entry that is no address (150 characters once made every write a 500) is not recorded."""
    url = new_postgres_database(postgres_server, postgres_template)
    token = asyncio.run(add_key(url, "auditor", "read", "write", "admin"))
    sent = {
        "forged-first": "198.51.100.66, 203.0.113.9",
        "proxy-chain": "203.0.113.10, 192.0.2.1",  # 192.0.2.0/24: trusted below
        "garbage": "x" * 150,
        "long-ipv6-scope": "fe80::1%" + "e" * 60,
    }
    with running_service(
        url,
        tmp_path / "service.log",
        REGISTRO_ENV="qa",
        REGISTRO_FORWARDED_ALLOW_IPS="127.0.0.1,192.0.2.0/24",
    ) as service:
        for name, forwarded in sent.items():
            response = httpx.post(
                f"{service.url}/data",
                json={"name": name},
                headers={**bearer(token), "X-Forwarded-For": forwarded},
                timeout=10,
            )
            assert response.status_code == 200, (name, response.text)
        audit = httpx.get(f"{service.url}/audit", headers=bearer(token), timeout=10).json()
    clients = {e["after"]["name"]: e["client"] for e in audit}
    assert clients == {
        "forged-first": "203.0.113.9",
        "proxy-chain": "203.0.113.10",
        "garbage": None,
        "long-ipv6-scope": None,
    }
