"""A failed gRPC call is one line and an exit code, the same for every client command."""

from __future__ import annotations

import grpc
import grpc.aio
import pytest
import typer

from smartcity.cli.errors import run_rpc


def _failing(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


@pytest.mark.parametrize(
    ("code", "exit_code", "line"),
    [
        (grpc.StatusCode.UNAVAILABLE, 1, "cannot reach the alerts service at h:1: down"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 1, "the alerts service at h:1 did not answer in time"),
        (grpc.StatusCode.INVALID_ARGUMENT, 2, "invalid argument: nope"),
        (grpc.StatusCode.NOT_FOUND, 2, "not found: nope"),
        (grpc.StatusCode.PERMISSION_DENIED, 1, "permission denied: nope"),
    ],
)
def test_a_failed_call_is_one_line_and_an_exit_code(
    capsys: pytest.CaptureFixture[str], code: grpc.StatusCode, exit_code: int, line: str
) -> None:
    details = "down" if code == grpc.StatusCode.UNAVAILABLE else "nope"

    async def call() -> None:
        raise _failing(code, details)

    with pytest.raises(typer.Exit) as exited:
        run_rpc("alerts", "h:1", call)
    assert exited.value.exit_code == exit_code
    assert capsys.readouterr().err.strip() == f"error: {line}"


def test_a_call_that_succeeds_returns_its_answer() -> None:
    async def call() -> int:
        return 42

    assert run_rpc("alerts", "h:1", call) == 42
