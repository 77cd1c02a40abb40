"""The minimal reference the service is measured against: raw ASGI + asyncpg, nothing else.

No framework, no middleware, no validation, no audit, no metrics, no logs: the same queries the
service runs for `GET /data/{id}`, `GET /data` and a plain insert for `POST /data`. Served by the
same server (uvicorn, uvloop, httptools) with the same worker count, so the ratio between the two
is the price of everything registro adds.
"""

from __future__ import annotations

import os
from typing import Any

import asyncpg
import orjson

GET = "SELECT id, name FROM records WHERE id = $1"
PAGE = "SELECT id, name FROM records WHERE id > $1 ORDER BY id LIMIT $2"
INSERT = (
    "INSERT INTO records (name, created_at, updated_at) VALUES ($1, now(), now())"
    " ON CONFLICT (name) DO NOTHING RETURNING id, name"
)
JSON = [(b"content-type", b"application/json")]

pool: asyncpg.Pool | None = None


async def _reply(send: Any, status: int, body: Any) -> None:
    await send({"type": "http.response.start", "status": status, "headers": JSON})
    await send({"type": "http.response.body", "body": orjson.dumps(body)})


async def _lifespan(receive: Any, send: Any) -> None:
    global pool
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            pool = await asyncpg.create_pool(os.environ["DATABASE_URL"], min_size=1, max_size=10)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            assert pool is not None
            await pool.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await _lifespan(receive, send)
        return
    assert pool is not None
    method, path = scope["method"], scope["path"]
    if method == "GET" and path.startswith("/data/"):
        row = await pool.fetchrow(GET, int(path[6:]))
        if row is None:
            await _reply(send, 404, {"message": "Data not found"})
        else:
            await _reply(send, 200, {"id": row[0], "name": row[1]})
    elif method == "GET" and path == "/data":
        query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
        rows = await pool.fetch(PAGE, int(query.get("after", 0)), int(query.get("limit", 100)))
        await _reply(send, 200, [{"id": r[0], "name": r[1]} for r in rows])
    elif method == "POST" and path == "/data":
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        row = await pool.fetchrow(INSERT, orjson.loads(body)["name"])
        if row is None:
            await _reply(send, 409, {"message": "Data already exists"})
        else:
            await _reply(
                send, 200, {"message": "Data inserted successfully", "id": row[0], "name": row[1]}
            )
    else:
        await _reply(send, 404, {"message": "Not found"})
