"""How every command reports a problem: one red line on stderr, then an exit code.

Exit codes: 1 when something outside the command failed (a device, a server), 2 when what
the user gave is wrong (a profile, the configuration, an option). A failed gRPC call is said
the same way by every client command (:func:`run_rpc`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import grpc
import grpc.aio
import typer
from rich.console import Console
from rich.markup import escape

__all__ = ["fail", "rpc_failed", "run_rpc"]

_stderr = Console(stderr=True, soft_wrap=True)

T = TypeVar("T")


def fail(message: object, code: int = 1) -> NoReturn:
    """Print ``error: message`` (not wrapped, so it can be copied) and exit with ``code``."""
    _stderr.print(f"[red]error:[/red] {escape(str(message))}", highlight=False)
    raise typer.Exit(code)


def run_rpc(service: str, target: str, call: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``call()`` to its end; a gRPC failure of the ``service`` at ``target`` becomes one
    line and an exit code (:func:`rpc_failed`)."""
    try:
        return asyncio.run(call())
    except grpc.aio.AioRpcError as exc:
        rpc_failed(service, target, exc)


def rpc_failed(service: str, target: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    """Say why a call to the ``service`` (``"monitoring"``) at ``target`` failed, and exit: 2
    when the request is wrong (invalid argument, not found), 1 otherwise."""
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        fail(f"cannot reach the {service} service at {target}: {exc.details()}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        fail(f"the {service} service at {target} did not answer in time")
    usage = code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    fail(f"{code.name.lower().replace('_', ' ')}: {exc.details()}", 2 if usage else 1)
