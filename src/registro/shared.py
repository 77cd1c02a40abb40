"""What the requests of a worker share, in one typed container that the application holds
(registro.app.Service): Starlette's `request.app` and its `state` answer any attribute as Any,
so mypy could check none of their uses; read through `shared(request)`, each one is checked."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from starlette.requests import Request

from registro.auth import Authenticator
from registro.lifecycle import Lifecycle
from registro.settings import Settings
from registro.store import Store


class TracerProvider(Protocol):
    def shutdown(self) -> None: ...


@dataclass(slots=True)
class Shared:
    settings: Settings
    lifecycle: Lifecycle
    tracer_provider: TracerProvider | None = None
    # Opened by the lifespan as the worker starts (registro.app), before any request.
    store: Store = field(init=False)
    authenticator: Authenticator = field(init=False)


def shared(request: Request) -> Shared:
    container: Shared = request.app.shared  # registro.app.Service
    return container
