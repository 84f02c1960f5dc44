"""A child process in a process group of its own: started, told to stop, and swept away.

Its own group, so that a signal reaches the child and whatever it forks, and Ctrl-C in the
terminal reaches only ``smartcity up``, which then stops the children in order. On Linux a
child also gets SIGKILL from the kernel if ``smartcity up`` itself is killed outright (the
same trampoline as the embedded nats-server), so not even a ``kill -9`` leaves children
behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from smartcity.runtime.nats_server import die_with_parent

__all__ = ["describe_status", "spawn_in_group", "sweep", "terminate_group"]


async def spawn_in_group(
    argv: Sequence[str],
    output: int | IO[bytes],
    *,
    env: Mapping[str, str] | None,
    cwd: Path | None,
) -> asyncio.subprocess.Process:
    """Start ``argv`` leading a new process group, its stdout and stderr into ``output`` (a
    file, or ``asyncio.subprocess.PIPE``)."""
    return await asyncio.create_subprocess_exec(
        *die_with_parent(list(argv)),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output,
        stderr=output,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        process_group=0,
    )


async def terminate_group(process: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM to the group ``process`` leads, up to ``grace`` seconds for the whole group to
    go, then SIGKILL to what is left; returns once ``process`` has ended."""
    group = process.pid
    _signal_group(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if process.returncode is not None and not _group_alive(group):
            break
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(process.wait(), 0.05)
    else:
        _signal_group(group, signal.SIGKILL)
    await process.wait()
    sweep(group)


def sweep(group: int) -> None:
    """SIGKILL whatever is left in the process group of a child that has ended."""
    if _group_alive(group):
        _signal_group(group, signal.SIGKILL)


def describe_status(status: int | None) -> str:
    """``exit status 3`` or ``killed by SIGKILL`` for an exit status."""
    if status is None:
        return "still running"
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def _signal_group(group: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True
