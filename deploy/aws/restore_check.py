"""The restored database's data check. restore.py runs this file's text with `python -c` in a
one-off Job: the service's image, the server pod's login and settings, inside the VPC.

1. `registro migrate --check` against RESTORED_ADDRESS, with the login of DATABASE_URL: the
   restored instance is reachable from the cluster, takes the login, and holds a schema this
   release can serve (exit 1: it is behind).
2. The newest audit entry's time, printed as `newest change: <ISO 8601>` (or `none`): restore.py
   requires it not to be after TIME.
Exit status: that of `migrate --check` (nothing more is done when it fails).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

NEWEST = "newest change:"


def restored_url(url: str, address: str) -> str:
    """The same login, port, database and options, at the restored instance's address."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    port = f":{parts.port}" if parts.port else ""
    return parts._replace(netloc=f"{user}{address}{port}").geturl()


async def newest_change(url: str, password_file: Path | None) -> str:
    from registro.store import open_store  # the service's image has it; restore.py does not

    store = await open_store(url, 1, password_file, create=False)
    try:
        entries = await store.audit_page(None, 1)
    finally:
        await store.close()
    return entries[0].at.isoformat() if entries else "none"


def main() -> int:
    url = restored_url(os.environ["DATABASE_URL"], os.environ["RESTORED_ADDRESS"])
    schema = subprocess.run(
        ["registro", "migrate", "--check"], env={**os.environ, "DATABASE_URL": url}, check=False
    ).returncode
    if schema != 0:
        return schema  # its own line said why; a schema behind may lack the audit table too
    password = os.environ.get("REGISTRO_DATABASE_PASSWORD_FILE")
    print(NEWEST, asyncio.run(newest_change(url, Path(password) if password else None)), flush=True)
    return schema


if __name__ == "__main__":
    sys.exit(main())
