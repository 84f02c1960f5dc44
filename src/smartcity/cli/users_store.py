"""How ``smartcity users`` reaches the identity store: no service, no token.

The store is the one the configuration names (``identity.store_url``, or ``--store``); the
identity service's domain is opened on it, so every rule and every event is the service's
own. Domain and storage errors become one line and an exit code.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from smartcity.cli.errors import fail

__all__ = ["ConfigOption", "StoreOption", "find_principal", "run_on_store"]

T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", dir_okay=False, help="YAML configuration.")
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="sqlite:///path.db or postgresql://… (identity.store_url)"),
]


def _settings(config: Path | None, store: str | None) -> Any:
    from smartcity.runtime.config import ConfigError, load_settings

    try:
        return load_settings(config, identity={"store_url": store} if store else None)
    except ConfigError as exc:
        fail(exc, 2)


def run_on_store(config: Path | None, store: str | None, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work(service)`` on the configured identity store, with errors as one line."""
    from smartcity.runtime.errors import DomainError, InvalidArgument
    from smartcity.runtime.storage import StoreError
    from smartcity.services.identity.app import open_identity

    settings = _settings(config, store)

    async def run() -> T:
        async with open_identity(settings) as service:
            return await work(service)

    try:
        return asyncio.run(run())
    except InvalidArgument as exc:
        fail(exc.message, 2)
    except DomainError as exc:
        fail(exc.message)
    except StoreError as exc:
        fail(exc)


async def find_principal(service: Any, username: str) -> Any:
    """The principal named ``username``; ``NotFound`` (one line, exit 1) when there is none."""
    from smartcity.runtime.errors import NotFound

    found = await service.store.principal_by_username(username)
    if found is None:
        raise NotFound(f"no principal named {username!r}")
    return found[0]
