"""Short-lived commands the supervisor runs to their end: making the streams, seeding,
injecting a fault.

Each is a process of its own rather than work in the supervisor, because what a Python
process loads (an OPC-UA client, identity's store, the gRPC clients, the NATS client) stays
for its life, and the supervisor lives as long as the city. Each runs in its own process
group, so that Ctrl-C in the terminal reaches the supervisor alone, which ends it itself;
like every child, it is killed by the kernel if the supervisor is.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from smartcity.up.child import TAIL_LINES
from smartcity.up.plan import Layout
from smartcity.up.ports import Endpoints
from smartcity.up.process_group import describe_status, spawn_in_group
from smartcity.up.processes import streams_command

__all__ = ["Finished", "StepError", "ensure_streams", "run_once"]


@dataclass(frozen=True)
class Finished:
    status: int | None
    """Its exit status; ``None`` when it was killed for taking longer than allowed."""
    out: bytes = b""
    err: bytes = b""
    """What it wrote, unless it wrote to a log."""

    def describe(self) -> str:
        return "did not end in time" if self.status is None else describe_status(self.status)


class StepError(RuntimeError):
    """A step the city cannot start without failed; the message has its last lines."""


async def run_once(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    timeout: float,  # noqa: ASYNC109
    log: Path | None = None,
) -> Finished:
    """Run ``argv`` to its end, at most ``timeout`` seconds; its output captured, or
    appended to ``log`` under a header line."""
    with contextlib.ExitStack() as files:
        output: int | BinaryIO = asyncio.subprocess.PIPE
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            output = files.enter_context(log.open("ab"))
            output.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(argv)}\n".encode())
            output.flush()
        process = await spawn_in_group(argv, output, env=env, cwd=None)
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        return Finished(None)
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    return Finished(process.returncode, out or b"", err or b"")


async def ensure_streams(layout: Layout, endpoints: Endpoints, timeout: float) -> None:  # noqa: ASYNC109
    """The platform's streams on the city's NATS, by ``smartcity streams ensure`` as the
    admin user; its output in ``logs/streams.log``. Raises :class:`StepError`."""
    argv, env = streams_command(layout, endpoints)
    log = layout.logs / "streams.log"
    offset = log.stat().st_size if log.exists() else 0
    finished = await run_once(argv, env=env, timeout=timeout, log=log)
    if finished.status == 0:
        return
    with log.open("rb") as written:
        written.seek(offset)
        lines = written.read().decode("utf-8", errors="replace").splitlines()[1:]
    tail = "\n".join(f"  {line}" for line in lines[-TAIL_LINES:]) or "  (nothing)"
    raise StepError(
        f"the streams could not be made on NATS ({finished.describe()}); "
        f"last lines of {log}:\n{tail}"
    )
