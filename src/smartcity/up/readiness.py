"""When a child counts as ready: conditions the supervisor polls.

Each says what it waits for in words (``description``), for the progress display and for
the error when a child is not ready in time. A condition that raises counts as "not yet".
"""

from __future__ import annotations

import asyncio
import re
import urllib.request
from dataclasses import dataclass
from typing import Any

from smartcity.runtime.nats_server import says_jetstream
from smartcity.up.child import Child

__all__ = ["GrpcServing", "HttpOk", "JetStreamServing", "LogLine"]

_PROBE_SECONDS = 1.0
_LINE_BYTES = 4096
"""Read again before what was new, so a line written in two pieces is seen whole."""


class LogLine:
    """A line matching ``pattern`` in what the child's current run has logged."""

    interval = 0.1

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self._compiled = re.compile(pattern, re.MULTILINE)
        self._scanned: tuple[int, int] = (-1, 0)
        """(the run's log offset, how far it was read): each check reads only what is new."""

    def __repr__(self) -> str:
        return f"LogLine({self.pattern!r})"

    @property
    def description(self) -> str:
        return f"{self.pattern!r} in its log"

    async def check(self, child: Child) -> bool:
        run, scanned = self._scanned
        start = max(scanned - _LINE_BYTES, child.log_offset)
        if run != child.log_offset:  # a new run: from its beginning
            start = child.log_offset
        try:
            with child.log.open("rb") as log:
                log.seek(start)
                data = log.read()
        except OSError:
            return False
        self._scanned = (child.log_offset, start + len(data))
        text = data.decode("utf-8", errors="replace")
        if start > child.log_offset:  # begun inside a line: that line was read before
            text = text.partition("\n")[2]
        return self._compiled.search(text) is not None


@dataclass(frozen=True)
class JetStreamServing:
    """A NATS server whose greeting (its ``INFO`` line) says JetStream runs."""

    host: str
    port: int
    interval: float = 0.05

    @property
    def description(self) -> str:
        return f"NATS with JetStream on port {self.port}"

    async def check(self, child: Child) -> bool:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), _PROBE_SECONDS
            )
        except (OSError, TimeoutError):
            return False
        try:
            greeting = await asyncio.wait_for(reader.readline(), _PROBE_SECONDS)
        except (OSError, TimeoutError, ValueError):
            return False
        finally:
            writer.close()
        return says_jetstream(greeting)


class GrpcServing:
    """``grpc.health.v1`` answering SERVING for the whole server."""

    interval = 0.25

    def __init__(self, target: str) -> None:
        self.target = target
        self._channel: Any = None
        """One channel for every check (it reconnects by itself), closed once SERVING."""

    def __repr__(self) -> str:
        return f"GrpcServing({self.target!r})"

    @property
    def description(self) -> str:
        return f"gRPC health SERVING at {self.target}"

    async def check(self, child: Child) -> bool:
        import grpc.aio
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        if self._channel is None:
            self._channel = grpc.aio.insecure_channel(self.target)
        try:
            answer = await health_pb2_grpc.HealthStub(self._channel).Check(
                health_pb2.HealthCheckRequest(), timeout=_PROBE_SECONDS
            )
        except grpc.aio.AioRpcError:
            return False
        if answer.status != health_pb2.HealthCheckResponse.SERVING:
            return False
        channel, self._channel = self._channel, None
        await channel.close()
        return True


@dataclass(frozen=True)
class HttpOk:
    """An HTTP GET answered 200 (the console's ``/healthz``)."""

    url: str
    interval: float = 0.25

    @property
    def description(self) -> str:
        return f"GET {self.url} answering 200"

    async def check(self, child: Child) -> bool:
        return await asyncio.to_thread(self._get)

    def _get(self) -> bool:
        # Loopback must not go through a proxy configured in the environment.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(self.url, timeout=_PROBE_SECONDS) as response:
                return bool(response.status == 200)
        except OSError:
            return False
