"""Whether a started ``nats-server`` is ready for the platform, and what it said if not.

Ready means usable: the client port accepts connections and the server's ``INFO`` greeting
announces JetStream (:func:`says_jetstream`), and, when monitoring is on, its
``/healthz?js-enabled-only=true`` answers. :func:`wait_until_ready` polls until then, and
gives up, with the last lines of the server's log, when the server exits or time runs out.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from smartcity.runtime.nats_process import NatsServerError

_POLL_INTERVAL = 0.02
_PROBE_TIMEOUT = 1.0
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 64 * 1024


def says_jetstream(greeting: bytes) -> bool:
    """Whether a nats-server's first line (its ``INFO {...}`` greeting) says JetStream runs:
    the server's own sign that it is ready for the platform."""
    if not greeting.startswith(b"INFO "):
        return False
    try:
        info = json.loads(greeting[5:])
    except ValueError:
        return False
    return isinstance(info, dict) and info.get("jetstream") is True


def announces_jetstream(host: str, port: int) -> bool:
    """Read the server's INFO greeting: it says ``"jetstream": true`` once JetStream runs."""
    try:
        with (
            socket.create_connection((host, port), timeout=_PROBE_TIMEOUT) as sock,
            sock.makefile("rb") as stream,
        ):
            greeting = stream.readline(64 * 1024)
    except OSError:
        return False
    return says_jetstream(greeting)


def healthy(monitor_url: str) -> bool:
    """Whether the server's monitoring endpoint says JetStream is healthy."""
    # Loopback must not go through an HTTP proxy configured in the environment.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(
            f"{monitor_url}/healthz?js-enabled-only=true", timeout=_PROBE_TIMEOUT
        ) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False


def wait_until_ready(
    process: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    timeout: float,
    abort: threading.Event,
    log_file: Path,
    log_since: int,
) -> None:
    """Poll ``ready`` until it is true; :class:`NatsServerError` when ``abort`` is set, the
    process exits or ``timeout`` seconds pass, ending with what the server wrote to
    ``log_file`` after offset ``log_since``."""
    deadline = time.monotonic() + timeout
    while True:
        if abort.is_set():
            raise NatsServerError("nats-server start was cancelled")
        code = process.poll()
        if code is not None:
            said = _describe_log(log_file, log_since)
            raise NatsServerError(f"nats-server exited with code {code} before it was ready{said}")
        if ready():
            return
        if time.monotonic() > deadline:
            raise NatsServerError(
                f"nats-server (pid {process.pid}) was not ready within "
                f"{timeout:g} s{_describe_log(log_file, log_since)}"
            )
        abort.wait(_POLL_INTERVAL)


def tail_of_log(log_file: Path, since: int) -> str:
    """The last lines of ``log_file`` written after offset ``since``."""
    try:
        with log_file.open("rb") as log:
            size = log.seek(0, os.SEEK_END)
            log.seek(max(since, size - _LOG_TAIL_BYTES))
            data = log.read()
    except OSError:
        return ""
    lines = data.decode("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
    return "\n".join(lines)


def _describe_log(log_file: Path, since: int) -> str:
    tail = tail_of_log(log_file, since)
    if not tail:
        return f" (nothing in {log_file})"
    indented = "\n".join(f"  {line}" for line in tail.splitlines())
    return f"; last lines of {log_file}:\n{indented}"
