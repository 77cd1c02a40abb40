"""The shared objects of a worker live in one typed container, not in Starlette's untyped state."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from asgi_lifespan import LifespanManager

from registro.app import create_app
from registro.auth import Authenticator
from registro.settings import load_settings
from registro.shared import Shared


def _starlette(app: Any) -> Any:
    while not hasattr(app, "state"):
        app = app.app
    return app


async def test_the_app_state_holds_the_typed_container_alone(tmp_path: Path) -> None:
    """Any attribute set on app.state is Any to mypy: a new one belongs in Shared."""
    app = create_app(load_settings(env="dev", database_url=f"sqlite:///{tmp_path}/s.db"))
    state = _starlette(app).state
    assert set(vars(state)["_state"]) == {"shared"}
    async with LifespanManager(app):
        assert set(vars(state)["_state"]) == {"shared"}
        shared: Shared = state.shared
        assert isinstance(shared.authenticator, Authenticator)
        assert shared.store.pool_usage() == (0, 1)
