"""The OPC-UA driver: one server, one session, every point of a device profile.

Two ways to get values, chosen by the profile's ``mode``:

- ``subscribe``: monitored items on one subscription; each Publish response becomes one
  batch of readings (:mod:`~smartcity.agents.opcua.subscription`).
- ``poll``: the points due at the same moment are read together, in Read requests no larger
  than ``max_nodes_per_read`` and the server's ``MaxNodesPerRead``
  (:mod:`~smartcity.agents.opcua.nodes`).

Every reading is handed over; which are worth publishing (deadband, keep-alive) the agent
decides, the same way in both modes (:mod:`~smartcity.agents.exception_report`). In
subscribe mode the server reports changes only (and applies a point's deadband itself), so
the agent asks for a flat value at its keep-alive (:meth:`OpcuaDriver.read_points`).

The server is authenticated before the user's credentials are sent
(:mod:`~smartcity.agents.opcua.session`, :mod:`~smartcity.agents.opcua.trust`); what goes
wrong is said in an engineer's words (:mod:`~smartcity.agents.opcua.errors`).

Recovery never needs a restart. The session counts as lost when the transport drops, when
a request fails at service level, or when no Publish response (data or keep-alive) arrives
within the bound the subscription allows. A lost session is closed and rebuilt from scratch
(new secure channel, session, subscription and monitored items), and every rebuild is paced
by the device's circuit breaker and jittered back-off. Opening a session is not a success:
the breaker closes only when the server delivers (a read answered, a publish received), so a
server that accepts sessions and refuses subscriptions is not given a new secure session
every few milliseconds.

While there is no session every point is reported BAD with the reason: once at the moment
the session is lost, then once per poll interval until it is back, so that the IOC sees a
device that is down rather than a silence it could mistake for "no change".
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import structlog
from asyncua import ua

from smartcity.agents.driver import DeviceDriver, ReadingSink, WriteRefusedError
from smartcity.agents.opcua.errors import OpcuaConnectError, SessionLostError, explain
from smartcity.agents.opcua.nodes import Tag, read_tags, variant_for
from smartcity.agents.opcua.session import (
    Session,
    alive,
    close_client,
    connect_client,
    start_session,
)
from smartcity.agents.opcua.status import status_name
from smartcity.agents.opcua.subscription import notifications, subscribe
from smartcity.agents.opcua.trust import ServerIdentity
from smartcity.agents.profile import OpcuaDevice, PointBase
from smartcity.agents.reading import Quality, Reading, Value
from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker

__all__ = ["OpcuaConnectError", "OpcuaDriver"]

log = structlog.get_logger(__name__)


class OpcuaDriver(DeviceDriver):
    """Reads one OPC-UA server as described by an :class:`OpcuaDevice` profile."""

    def __init__(self, profile: OpcuaDevice, *, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(profile)
        self.device = profile
        self.changes_only = profile.mode == "subscribe"
        self.breaker = breaker or CircuitBreaker(
            backoff=Backoff(initial=max(0.5, profile.poll_interval), maximum=30.0)
        )
        self._tags = [
            Tag(
                handle=index + 1,
                point=point,
                node_id=ua.NodeId.from_string(point.node),
                interval=profile.interval_of(point),
                sampling=point.sampling_interval or profile.interval_of(point),
            )
            for index, point in enumerate(profile.points)
        ]
        self._by_name = {tag.point.name: tag for tag in self._tags}
        self._by_handle = {tag.handle: tag for tag in self._tags}
        self._session: Session | None = None
        self._connect_lock = asyncio.Lock()
        self._last_outage: float | None = None
        self.server_identity: ServerIdentity | None = None
        """The certificate the server was last accepted with, and why (None before that,
        and with security policy None)."""

    # -- public contract ---------------------------------------------------------------

    async def run(self, sink: ReadingSink) -> None:
        reason = "not connected yet"
        try:
            while True:
                if not self.breaker.allow():
                    await self._wait_to_retry(sink, reason)
                    continue
                try:
                    session = await self._connected()
                except OpcuaConnectError as exc:
                    reason = f"not connected: {exc}"
                    self._failed(reason)
                    await self._report_outage(sink, reason)
                    await self._wait_to_retry(sink, reason)
                    continue
                try:
                    if self.device.mode == "subscribe":
                        await self._serve_subscription(session, sink)
                    else:
                        await self._serve_polls(session, sink)
                except SessionLostError as lost:
                    reason = f"connection lost: {lost}"
                    self._failed(reason)
                    await self._drop(session)
                    await self._report_outage(sink, reason)
                    await self._wait_to_retry(sink, reason)
        finally:
            await self.close()

    async def read_once(self) -> list[Reading]:
        try:
            session = await self._connected()
        except OpcuaConnectError as exc:
            return self.bad_readings(self.device.points, f"not connected: {exc}")
        try:
            return await read_tags(session, self._tags, self.device, self.stats)
        except SessionLostError as lost:
            self._failed(f"connection lost: {lost}")
            await self._drop(session)
            return self.bad_readings(self.device.points, f"connection lost: {lost}")

    async def read_points(self, names: Sequence[str]) -> list[Reading]:
        session = self._session
        if session is None or session.lost is not None:
            return []
        tags = [self._by_name[name] for name in names if name in self._by_name]
        try:
            return await read_tags(session, tags, self.device, self.stats)
        except SessionLostError:
            return []  # the session's own loop notices the loss and reports it

    async def write(self, point: PointBase, value: Value) -> Value:
        tag = self._by_name.get(point.name)
        if tag is None:
            raise WriteRefusedError(f"{point.name!r} is not a point of device {self.device.device}")
        if not tag.point.writable:
            raise WriteRefusedError(f"{point.name!r} is not marked writable in the profile")
        try:
            session = await self._connected()
        except OpcuaConnectError as exc:
            raise WriteRefusedError(f"not written: {exc}") from None
        node = session.client.get_node(tag.node_id)
        try:
            try:
                variant_type = await node.read_data_type_as_variant_type()
            except ua.UaStatusCodeError as exc:
                raise WriteRefusedError(
                    f"{point.name}: cannot read the data type of {tag.point.node} "
                    f"({status_name(exc.code)})"
                ) from None
            variant = variant_for(point.name, value, variant_type)
            (status,) = await session.client.uaclient.write_attributes(
                [tag.node_id], [ua.DataValue(variant)], ua.AttributeIds.Value
            )
            if not status.is_good():
                raise WriteRefusedError(
                    f"{point.name}: the server refused to write {value!r} to {tag.point.node} "
                    f"({status_name(status)})"
                )
            (readback,) = await read_tags(session, [tag], self.device, self.stats)
        except SessionLostError as lost:
            await self._drop(session)
            raise WriteRefusedError(
                f"{point.name}: connection lost during the write ({lost})"
            ) from None
        except ua.UaStatusCodeError as exc:
            name = status_name(exc.code)
            if name.startswith(("BadSession", "BadSecureChannel")):
                await self._drop(session)
            raise WriteRefusedError(
                f"{point.name}: the server refused the write ({name})"
            ) from None
        except (ConnectionError, OSError, TimeoutError, ua.UaError) as exc:
            await self._drop(session)
            raise WriteRefusedError(
                f"{point.name}: connection lost during the write ({explain(exc, self.device)})"
            ) from None
        if readback.quality is Quality.BAD or readback.value is None:
            raise WriteRefusedError(
                f"{point.name}: written, but reading it back gave {readback.reason or 'no value'}"
            )
        return readback.value

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await close_client(session.client, self.device.timeout)
        self.stats.connected = False

    async def connect(self) -> None:
        """Open the session now; raises :class:`OpcuaConnectError` with the reason.
        ``smartcity agent check`` uses it to show a security or identity mistake plainly."""
        await self._connected()

    # -- sessions ----------------------------------------------------------------------

    async def _connected(self) -> Session:
        async with self._connect_lock:
            session = self._session
            if session is not None and session.lost is None and alive(session.client):
                return session
            if session is not None:
                await self._drop(session)
            session = await self._open()
            self._session = session
            self.stats.connected = True
            return session

    async def _open(self) -> Session:
        client, self.server_identity = await connect_client(self.device)
        return await start_session(client, self.device)

    async def _drop(self, session: Session) -> None:
        if self._session is session:
            self._session = None
            self.stats.connected = False
        await close_client(session.client, self.device.timeout)

    def _delivered(self) -> None:
        """The server answered a read or sent a publish: only this closes the breaker."""
        self.breaker.record_success()
        self._last_outage = None

    def _failed(self, reason: str) -> None:
        self.breaker.record_failure()
        self.stats.errors += 1
        self.stats.last_error = reason
        self.stats.connected = False
        log.warning("opcua device unavailable", device=self.device.device, reason=reason)

    async def _report_outage(self, sink: ReadingSink, reason: str) -> None:
        """BAD for every point on the first call after a loss, then once per poll interval."""
        now = time.monotonic()
        if self._last_outage is not None and now - self._last_outage < self.device.poll_interval:
            return
        self._last_outage = now
        readings = self.bad_readings(self.device.points, reason)
        self.stats.readings += len(readings)
        await sink(readings)

    async def _wait_to_retry(self, sink: ReadingSink, reason: str) -> None:
        if self.breaker.state is BreakerState.OPEN:
            delay = self.breaker.retry_in
        else:
            delay = self.device.poll_interval
        deadline = time.monotonic() + delay
        while (remaining := deadline - time.monotonic()) > 0:
            await asyncio.sleep(min(remaining, self.device.poll_interval))
            await self._report_outage(sink, reason)

    # -- subscribe mode ----------------------------------------------------------------

    async def _serve_subscription(self, session: Session, sink: ReadingSink) -> None:
        feed, bound, refused = await subscribe(session, self.device, self._tags, self.stats)
        if refused:
            # these points stay BAD, with the server's reason, until the next session
            self.stats.readings += len(refused)
            await sink(refused)
        check_every = min(bound / 4, 1.0)
        started = time.monotonic()
        delivered = False
        while True:
            try:
                async with asyncio.timeout(check_every):
                    data = await feed.backlog.get()
            except TimeoutError:
                if not delivered and feed.last_publish_at is not None:  # a keep-alive
                    delivered = True
                    self._delivered()
                if session.lost is not None:
                    raise SessionLostError(session.lost) from None
                if not alive(session.client):
                    raise SessionLostError("transport closed") from None
                silent = time.monotonic() - (feed.last_publish_at or started)
                if feed.backlog.empty() and silent > bound:
                    raise SessionLostError(
                        f"no publish response or keep-alive for {silent:.1f}s (bound {bound:.1f}s)"
                    ) from None
                continue
            if not delivered:
                delivered = True
                self._delivered()
            readings, problem = notifications(data, session, self._by_handle)
            if readings:
                self.stats.polls += 1
                self.stats.readings += len(readings)
                self.stats.last_success = time.time()
                await sink(readings)
            if problem is not None:
                raise SessionLostError(problem)

    # -- poll mode ---------------------------------------------------------------------

    async def _serve_polls(self, session: Session, sink: ReadingSink) -> None:
        groups: dict[float, list[Tag]] = {}
        for tag in self._tags:
            groups.setdefault(tag.interval, []).append(tag)
        due_at = dict.fromkeys(groups, time.monotonic())
        while True:
            now = time.monotonic()
            due = [interval for interval, at in due_at.items() if at <= now]
            if not due:
                await asyncio.sleep(min(due_at.values()) - now)
                if session.lost is not None:
                    raise SessionLostError(session.lost)
                continue
            tags = [tag for interval in due for tag in groups[interval]]
            for interval in due:
                # skip cycles missed while the server was slow rather than bursting to catch up
                due_at[interval] = max(due_at[interval] + interval, now)
            started = time.perf_counter()
            readings = await read_tags(session, tags, self.device, self.stats)
            if self.breaker.failures or self.breaker.state is not BreakerState.CLOSED:
                self._delivered()
            self.stats.polls += 1
            self.stats.record_latency((time.perf_counter() - started) * 1000)
            self.stats.last_success = time.time()
            self.stats.readings += len(readings)
            await sink(readings)
