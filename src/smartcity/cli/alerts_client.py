"""How the ``smartcity alerts`` commands reach the alerts service and show what it answers.

The options every command shares (``--target``, ``--token``, ``--json``, ``--comment``), one
RPC with a gRPC failure as one line and an exit code, and the shapes of the output: protobuf
JSON with the API's field names, times in the machine's time zone, severities by name.
"""

from __future__ import annotations

import json
from datetime import UTC
from typing import Annotated, Any

import typer
from google.protobuf import json_format
from google.protobuf.timestamp_pb2 import Timestamp

from smartcity.cli.errors import run_rpc

__all__ = [
    "DEFAULT_TARGET",
    "SEVERITY",
    "TARGET_ENV",
    "CommentOption",
    "JsonOption",
    "TargetOption",
    "TokenOption",
    "as_json",
    "call",
    "echo_json",
    "when",
]

TARGET_ENV = "SMARTCITY_ALERTS_TARGET"
DEFAULT_TARGET = "127.0.0.1:50054"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
TargetOption = Annotated[
    str,
    typer.Option("--target", "-t", envvar=TARGET_ENV, help="Alerts service host:port."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="SMARTCITY_TOKEN", help="Access token (bearer)."),
]
CommentOption = Annotated[str, typer.Option("--comment", "-m", help="Why, for the record.")]
SEVERITY = {1: "info", 2: "warning", 3: "critical"}


def call(target: str, token: str | None, method: str, request: Any) -> Any:
    """One RPC; a gRPC failure becomes one line and an exit code (2: the request is wrong)."""
    from smartcity.alerts.v1 import alerts_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    async def run() -> Any:
        async with channel(target, token=token) as connection:
            stub = alerts_pb2_grpc.AlertsServiceStub(connection)
            return await getattr(stub, method)(request, timeout=10)

    return run_rpc("alerts", target, run)


def as_json(message: Any) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))
