"""The shared objects of a worker live in one typed container, not in Starlette's untyped state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager

from registro.app import Service, create_app
from registro.auth import Authenticator
from registro.settings import load_settings
from registro.shared import Shared


def _service(app: Any) -> Service:
    while not isinstance(app, Service):
        app = app.app
    return app


async def test_the_service_holds_the_typed_container_that_its_lifespan_fills(
    tmp_path: Path,
) -> None:
    """No Starlette application, so no untyped app.state for a shared object to hide in: the
    lifespan fills the one container the requests read (registro.shared)."""
    app = create_app(load_settings(env="dev", database_url=f"sqlite:///{tmp_path}/s.db"))
    service = _service(app)
    assert not hasattr(service, "state")
    async with LifespanManager(app):
        shared: Shared = service.shared
        assert isinstance(shared.authenticator, Authenticator)
        assert shared.store.pool_usage() == (0, 1)
