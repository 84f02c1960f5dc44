"""The OPC-UA driver: one server, one session, every point of a device profile.

Two ways to get values, chosen by the profile's ``mode``:

- ``subscribe``: monitored items on one subscription; each Publish response becomes one
  batch of readings (:meth:`OpcuaDriver.subscribe`, :mod:`~smartcity.agents.opcua.subscription`).
- ``poll``: the agent's device loop asks for the points due at the same moment, which are
  read together, in Read requests no larger than ``max_nodes_per_read`` and the server's
  ``MaxNodesPerRead`` (:meth:`OpcuaDriver.read`, :mod:`~smartcity.agents.opcua.nodes`).

Every reading is handed over; which are worth publishing (deadband, keep-alive) the agent
decides, the same way in both modes (:mod:`~smartcity.agents.exception_report`). In
subscribe mode the server reports changes only (and applies a point's deadband itself), so
the agent asks for a flat value at its keep-alive (:meth:`OpcuaDriver.read`).

The server is authenticated before the user's credentials are sent
(:mod:`~smartcity.agents.opcua.session`, :mod:`~smartcity.agents.opcua.trust`); what goes
wrong is said in an engineer's words (:mod:`~smartcity.agents.opcua.errors`).

The session counts as lost when the transport drops, when a request fails at service level,
or, in subscribe mode, when no Publish response (data or keep-alive) arrives within the bound
the subscription allows (a server restart, a silent half-open link). A lost session is
closed, and the next read or subscription opens one from scratch (new secure channel,
session, subscription and monitored items). A session that cannot be opened or is lost is
raised as :class:`~smartcity.agents.driver.DeviceUnreachableError` (``not connected: ...``,
``connection lost: ...``): the agent's device loop paces the rebuilds with the device's
circuit breaker and back-off, reports the points BAD meanwhile, and counts only delivery (a
read answered, a publish received, which :meth:`OpcuaDriver.subscribe` signals) as the
device being back (:mod:`~smartcity.agents.device_loop`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

from asyncua import ua

from smartcity.agents.driver import (
    DeviceDriver,
    DeviceUnreachableError,
    ReadingSink,
    WriteRefusedError,
)
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

__all__ = ["OpcuaConnectError", "OpcuaDriver"]


class OpcuaDriver(DeviceDriver):
    """Reads one OPC-UA server as described by an :class:`OpcuaDevice` profile."""

    def __init__(self, profile: OpcuaDevice) -> None:
        super().__init__(profile)
        self.device = profile
        self.changes_only = profile.mode == "subscribe"
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
        self.server_identity: ServerIdentity | None = None
        """The certificate the server was last accepted with, and why (None before that,
        and with security policy None)."""

    # -- public contract ---------------------------------------------------------------

    async def connect(self) -> None:
        """Open the session now; raises :class:`OpcuaConnectError` with the reason.
        ``smartcity agent check`` uses it to show a security or identity mistake plainly."""
        await self._connected()

    async def read(self, names: Sequence[str], *, probe: bool = False) -> list[Reading]:
        # every OPC-UA request is sent once (no retries to leave out for a probe)
        tags = [self._by_name[name] for name in names if name in self._by_name]
        session = await self._session_or_raise()
        started = time.perf_counter()
        try:
            readings = await read_tags(session, tags, self.device, self.stats)
        except SessionLostError as lost:
            await self._drop(session)
            raise self._lost(f"connection lost: {lost}") from None
        self.stats.record_latency((time.perf_counter() - started) * 1000)
        return readings

    async def subscribe(self, sink: ReadingSink, delivered: Callable[[], None]) -> None:
        session = await self._session_or_raise()
        try:
            await self._serve_subscription(session, sink, delivered)
        except SessionLostError as lost:
            await self._drop(session)
            raise self._lost(f"connection lost: {lost}") from None

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

    async def reset(self) -> None:
        session = self._session
        if session is not None:
            await self._drop(session)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await close_client(session.client, self.device.timeout)
        self.stats.connected = False

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

    async def _session_or_raise(self) -> Session:
        """The session in use, or a new one; :class:`DeviceUnreachableError` if none opens.
        A session found lost is dropped and raised as such, so that the first outage
        reading says the connection was lost rather than why a new one failed."""
        session = self._session
        if session is not None and (session.lost is not None or not alive(session.client)):
            await self._drop(session)
            raise self._lost(f"connection lost: {session.lost or 'transport closed'}")
        try:
            return await self._connected()
        except OpcuaConnectError as exc:
            raise self._lost(f"not connected: {exc}") from None

    def _lost(self, reason: str) -> DeviceUnreachableError:
        """The failure to raise when the session could not be opened or was lost, counted
        (the agent's device loop logs it)."""
        self.stats.record_error(reason)
        self.stats.connected = False
        return DeviceUnreachableError(reason)

    # -- subscribe mode ----------------------------------------------------------------

    async def _serve_subscription(
        self, session: Session, sink: ReadingSink, delivered: Callable[[], None]
    ) -> None:
        """Hand over each Publish response until the session is lost (raises
        :class:`SessionLostError`); ``delivered`` once, at the first publish."""
        feed, bound, refused = await subscribe(session, self.device, self._tags, self.stats)
        if refused:
            # these points stay BAD, with the server's reason, until the next session
            await sink(refused)
        check_every = min(bound / 4, 1.0)
        started = time.monotonic()
        heard = False
        while True:
            try:
                async with asyncio.timeout(check_every):
                    data = await feed.backlog.get()
            except TimeoutError:
                if not heard and feed.last_publish_at is not None:  # a keep-alive
                    heard = True
                    delivered()
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
            if not heard:
                heard = True
                delivered()
            readings, problem = notifications(data, session, self._by_handle)
            if readings:
                await sink(readings)
            if problem is not None:
                raise SessionLostError(problem)
