"""The OPC-UA driver: one server, one session, every point of a device profile.

Two ways to get values, chosen by the profile's ``mode``:

- ``subscribe``: one subscription whose publishing interval is the device's poll interval;
  every point is a monitored item with its own sampling interval, a queue long enough to keep
  every sample taken between two publishes, and an absolute deadband filter when the point
  has one. Items are created in batches no larger than the server's
  ``MaxMonitoredItemsPerCall``. Each Publish response becomes one batch of readings.
- ``poll``: the points due at the same moment are read together, in Read requests no larger
  than ``max_nodes_per_read`` and the server's ``MaxNodesPerRead``; a deadband is applied by
  the driver, so both modes report by exception the same way.

The server is authenticated before the user's credentials are sent: its certificate must be
pinned, in the trust list, or trusted on first use (:mod:`~smartcity.agents.opcua.trust`).

Recovery never needs a restart. The session counts as lost when the transport drops, when
a request fails at service level, or when no Publish response (data or keep-alive) arrives
within 1.5 keep-alive periods (revised publishing interval x revised keep-alive count) plus
the request timeout: a half-open TCP connection or a server that silently dropped the
subscription is caught too. A lost session is closed and rebuilt from scratch (new secure
channel, session, subscription and monitored items), and every rebuild is paced by the
device's circuit breaker and jittered back-off. Opening a session is not a success: the
breaker closes only when the server delivers (a read answered, a publish received), so a
server that accepts sessions and refuses subscriptions is not given a new secure session
every few milliseconds.

While there is no session every point is reported BAD with the reason: once at the moment
the session is lost, then once per poll interval until it is back, so that the IOC sees a
device that is down rather than a silence it could mistake for "no change".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import structlog
from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import Subscription
from asyncua.crypto import security_policies

from smartcity.agents.driver import DeviceDriver, ReadingSink, WriteRefusedError
from smartcity.agents.opcua.certificates import CertificateError, application_uri_of
from smartcity.agents.opcua.status import quality_of, status_name
from smartcity.agents.opcua.trust import ServerIdentity, ServerTrust
from smartcity.agents.profile import OpcuaDevice, OpcuaPoint, PointBase
from smartcity.agents.reading import Quality, Reading, Value
from smartcity.agents.resilience import Backoff, BreakerState, CircuitBreaker

log = structlog.get_logger(__name__)

DEFAULT_ITEMS_PER_CALL = 500
"""Monitored items per CreateMonitoredItems call when the server does not publish a limit."""
SESSION_TIMEOUT_MS = 60_000
"""How long a server keeps the session of an agent that vanished without closing it."""
KEEPALIVE_PERIOD_MIN = 1.0
"""Shortest keep-alive period requested (seconds); the period is at least 3 publishes."""
WATCHDOG_MARGIN = 1.5
PUBLISH_BACKLOG = 64
"""Publish responses waiting for the sink. When full, the driver stops asking the server
for more, and the server holds the notifications in its monitored-item queues."""

_T = TypeVar("_T")
_R = TypeVar("_R")

_MODES = {
    "None": ua.MessageSecurityMode.None_,
    "Sign": ua.MessageSecurityMode.Sign,
    "SignAndEncrypt": ua.MessageSecurityMode.SignAndEncrypt,
}
_POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "None": security_policies.SecurityPolicyNone,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}
_INTEGER_RANGES = {
    ua.VariantType.SByte: (-(2**7), 2**7 - 1),
    ua.VariantType.Byte: (0, 2**8 - 1),
    ua.VariantType.Int16: (-(2**15), 2**15 - 1),
    ua.VariantType.UInt16: (0, 2**16 - 1),
    ua.VariantType.Int32: (-(2**31), 2**31 - 1),
    ua.VariantType.UInt32: (0, 2**32 - 1),
    ua.VariantType.Int64: (-(2**63), 2**63 - 1),
    ua.VariantType.UInt64: (0, 2**64 - 1),
}
_FLOAT_MAX = 3.4028234663852886e38


class OpcuaConnectError(ConnectionError):
    """No session could be opened; the message says why in an engineer's words."""


class _SessionLostError(Exception):
    """The session stopped working; the message is the reason."""


@dataclass(frozen=True)
class _Tag:
    """A profile point bound to its parsed node id and schedule."""

    handle: int
    point: OpcuaPoint
    node_id: ua.NodeId
    interval: float
    sampling: float


@dataclass
class _Session:
    client: Client
    read_chunk: int
    items_per_call: int
    lost: str | None = None


class _Feed(Subscription):
    """A subscription that hands over each Publish response whole.

    One response is one batch for the sink; awaiting a full backlog holds back the client's
    publish loop, which is OPC-UA's own flow control, instead of dropping notifications in
    an in-process queue.
    """

    def __init__(self, session: UaSession, params: ua.CreateSubscriptionParameters) -> None:
        super().__init__(session, params, None, queue_maxsize=1)
        self.backlog: asyncio.Queue[list[Any]] = asyncio.Queue(maxsize=PUBLISH_BACKLOG)

    async def publish_callback(self, publish_result: ua.PublishResult) -> None:
        self.last_publish_at = time.monotonic()
        message = publish_result.NotificationMessage
        if message.NotificationData:
            self.last_sequence_number = int(message.SequenceNumber)
            await self.backlog.put(list(message.NotificationData))


class OpcuaDriver(DeviceDriver):
    """Reads one OPC-UA server as described by an :class:`OpcuaDevice` profile."""

    def __init__(self, profile: OpcuaDevice, *, breaker: CircuitBreaker | None = None) -> None:
        super().__init__(profile)
        self.device = profile
        self.breaker = breaker or CircuitBreaker(
            backoff=Backoff(initial=max(0.5, profile.poll_interval), maximum=30.0)
        )
        self._tags = [
            _Tag(
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
        self._session: _Session | None = None
        self._connect_lock = asyncio.Lock()
        self._last_outage: float | None = None
        self._reported: dict[str, Value] = {}
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
                except _SessionLostError as lost:
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
            return await self._read(session, self._tags)
        except _SessionLostError as lost:
            self._failed(f"connection lost: {lost}")
            await self._drop(session)
            return self.bad_readings(self.device.points, f"connection lost: {lost}")

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
            variant = _variant(point.name, value, variant_type)
            (status,) = await session.client.uaclient.write_attributes(
                [tag.node_id], [ua.DataValue(variant)], ua.AttributeIds.Value
            )
            if not status.is_good():
                raise WriteRefusedError(
                    f"{point.name}: the server refused to write {value!r} to {tag.point.node} "
                    f"({status_name(status)})"
                )
            (readback,) = await self._read(session, [tag])
        except _SessionLostError as lost:
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
                f"{point.name}: connection lost during the write ({_explain(exc, self.device)})"
            ) from None
        if readback.quality is Quality.BAD or readback.value is None:
            raise WriteRefusedError(
                f"{point.name}: written, but reading it back gave {readback.reason or 'no value'}"
            )
        return readback.value

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await self._close_client(session.client)
        self.stats.connected = False

    async def connect(self) -> None:
        """Open the session now; raises :class:`OpcuaConnectError` with the reason.
        ``smartcity agent check`` uses it to show a security or identity mistake plainly."""
        await self._connected()

    # -- sessions ----------------------------------------------------------------------

    async def _connected(self) -> _Session:
        async with self._connect_lock:
            session = self._session
            if session is not None and session.lost is None and _alive(session.client):
                return session
            if session is not None:
                await self._drop(session)
            session = await self._open()
            self._session = session
            self.stats.connected = True
            return session

    async def _open(self) -> _Session:
        device = self.device
        security = device.security
        client = Client(device.endpoint, timeout=device.timeout, watchdog_intervall=device.timeout)
        client.session_timeout = SESSION_TIMEOUT_MS
        client.name = f"smartcity agent {device.site}/{device.device}"
        client.description = client.name
        client.product_uri = "urn:smartcity:agent"
        mode = _MODES[security.mode]
        policy = _POLICIES[security.policy]
        trust = None
        if security.policy != "None":
            trust = client.certificate_validator = ServerTrust(
                device.endpoint,
                folder=security.trust_folder,
                pinned=security.server_cert,
                first_use=security.trust_on_first_use,
            )
        try:
            endpoints = await client.connect_and_get_server_endpoints()
            offered = [
                ep
                for ep in endpoints
                if ep.SecurityPolicyUri == policy.URI and ep.SecurityMode == mode
            ]
            if not offered:
                raise OpcuaConnectError(
                    f"{device.endpoint} offers no endpoint with security policy "
                    f"{security.policy} and mode {security.mode}; it offers "
                    f"{_describe(endpoints)}"
                )
            _check_identity(device, offered[0], mode)
            if security.policy != "None":
                assert security.cert is not None  # the profile model enforces both
                assert security.key is not None
                # the channel is encrypted to this certificate; ServerTrust judges it
                server_cert = _first_certificate(offered[0].ServerCertificate)
                client.application_uri = application_uri_of(security.cert)
                await client.set_security(
                    policy,
                    certificate=str(security.cert),
                    private_key=str(security.key),
                    server_certificate=server_cert,
                    mode=mode,
                )
            if security.username is not None and security.password is not None:
                client.set_user(security.username)
                client.set_password(security.password)
            await client.connect()
        except OpcuaConnectError:
            await self._close_client(client)
            raise
        except CertificateError as exc:
            await self._close_client(client)
            raise OpcuaConnectError(str(exc)) from None
        except ValueError as exc:  # cryptography cannot load the certificate or key
            await self._close_client(client)
            raise OpcuaConnectError(
                f"cannot use the agent certificate {security.cert} or key {security.key}: {exc}"
            ) from None
        except Exception as exc:
            await self._close_client(client)
            if trust is not None and trust.refusal is not None:
                raise OpcuaConnectError(trust.refusal) from None
            raise OpcuaConnectError(_explain(exc, device)) from None
        self._trusted(trust)
        session = _Session(client, read_chunk=device.max_nodes_per_read, items_per_call=0)
        client.connection_lost_callback = _on_lost(session)
        try:
            max_read, max_items = await self._server_limits(client)
        except Exception as exc:
            await self._close_client(client)
            raise OpcuaConnectError(_explain(exc, device)) from None
        if max_read:
            session.read_chunk = min(session.read_chunk, max_read)
        session.items_per_call = max_items or DEFAULT_ITEMS_PER_CALL
        log.info(
            "opcua session open",
            device=device.device,
            endpoint=device.endpoint,
            policy=security.policy,
            mode=security.mode,
            read_chunk=session.read_chunk,
            items_per_call=session.items_per_call,
        )
        return session

    def _trusted(self, trust: ServerTrust | None) -> None:
        identity = self.server_identity = trust.accepted if trust is not None else None
        if identity is not None and identity.first_use:
            log.warning(
                "opcua server trusted on first use",
                device=self.device.device,
                endpoint=self.device.endpoint,
                thumbprint=identity.thumbprint,
                subject=identity.subject,
                stored=identity.trusted_by,
            )

    async def _server_limits(self, client: Client) -> tuple[int, int]:
        """MaxNodesPerRead and MaxMonitoredItemsPerCall; 0 where the server sets no limit
        or does not say."""
        limits = ua.ObjectIds
        params = ua.ReadParameters(
            NodesToRead=[
                ua.ReadValueId(NodeId=ua.NodeId(node), AttributeId=ua.AttributeIds.Value)
                for node in (
                    limits.Server_ServerCapabilities_OperationLimits_MaxNodesPerRead,
                    limits.Server_ServerCapabilities_OperationLimits_MaxMonitoredItemsPerCall,
                )
            ]
        )
        values = await client.uaclient.read(params)
        found = []
        for value in values:
            ok = value.StatusCode is None or value.StatusCode.is_good()
            number = value.Value.Value if ok and value.Value is not None else None
            found.append(number if isinstance(number, int) and number > 0 else 0)
        return found[0], found[1]

    async def _drop(self, session: _Session) -> None:
        if self._session is session:
            self._session = None
            self.stats.connected = False
        await self._close_client(session.client)

    async def _close_client(self, client: Client) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.disconnect(), self.device.timeout)

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
        self._reported.clear()
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

    async def _serve_subscription(self, session: _Session, sink: ReadingSink) -> None:
        feed, bound, refused = await self._subscribe(session)
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
                    raise _SessionLostError(session.lost) from None
                if not _alive(session.client):
                    raise _SessionLostError("transport closed") from None
                silent = time.monotonic() - (feed.last_publish_at or started)
                if feed.backlog.empty() and silent > bound:
                    raise _SessionLostError(
                        f"no publish response or keep-alive for {silent:.1f}s (bound {bound:.1f}s)"
                    ) from None
                continue
            if not delivered:
                delivered = True
                self._delivered()
            readings, problem = self._notifications(data, session)
            if readings:
                self.stats.polls += 1
                self.stats.readings += len(readings)
                self.stats.last_success = time.time()
                await sink(readings)
            if problem is not None:
                raise _SessionLostError(problem)

    async def _subscribe(self, session: _Session) -> tuple[_Feed, float, list[Reading]]:
        publishing = self.device.poll_interval
        keepalive_count = max(1, math.ceil(max(3 * publishing, KEEPALIVE_PERIOD_MIN) / publishing))
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=publishing * 1000,
            RequestedLifetimeCount=keepalive_count * 4,
            RequestedMaxKeepAliveCount=keepalive_count,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        feed = _Feed(session.client.uaclient.session, params)
        try:
            result = await feed.init()
            revised_ms = result.RevisedPublishingInterval or publishing * 1000
            keepalive = (revised_ms / 1000) * (result.RevisedMaxKeepAliveCount or keepalive_count)
            bound = keepalive * WATCHDOG_MARGIN + self.device.timeout

            async def create(
                batch: Sequence[_Tag],
            ) -> list[int | ua.StatusCode]:
                requests = [self._item_request(tag, revised_ms) for tag in batch]
                self.stats.requests += 1
                return await feed.create_monitored_items(requests)

            results = await _batched(self._tags, session.items_per_call, create)
        except (ConnectionError, OSError, TimeoutError, ua.UaError) as exc:
            raise _SessionLostError(f"cannot subscribe: {_explain(exc, self.device)}") from None
        now = time.time()
        refused = [
            Reading(
                tag.point.name, None, tag.point.unit, Quality.BAD, status_name(res), read_time=now
            )
            for tag, res in zip(self._tags, results, strict=True)
            if isinstance(res, ua.StatusCode)
        ]
        if refused:
            log.warning(
                "opcua monitored items refused",
                device=self.device.device,
                points={r.metric: r.reason for r in refused},
            )
        return feed, bound, refused

    def _item_request(self, tag: _Tag, publishing_ms: float) -> ua.MonitoredItemCreateRequest:
        sampling_ms = tag.sampling * 1000
        parameters = ua.MonitoringParameters(
            ClientHandle=tag.handle,
            SamplingInterval=sampling_ms,
            # keep every sample taken between two publishes
            QueueSize=max(1, math.ceil(publishing_ms / sampling_ms)),
            DiscardOldest=True,
        )
        if tag.point.deadband is not None:
            parameters.Filter = ua.DataChangeFilter(
                Trigger=ua.DataChangeTrigger.StatusValue,
                DeadbandType=ua.DeadbandType.Absolute,
                DeadbandValue=tag.point.deadband,
            )
        return ua.MonitoredItemCreateRequest(
            ItemToMonitor=ua.ReadValueId(NodeId=tag.node_id, AttributeId=ua.AttributeIds.Value),
            MonitoringMode=ua.MonitoringMode.Reporting,
            RequestedParameters=parameters,
        )

    def _notifications(
        self, data: Iterable[Any], session: _Session
    ) -> tuple[list[Reading], str | None]:
        now = time.time()
        readings: list[Reading] = []
        problem = None
        for notification in data:
            if isinstance(notification, ua.DataChangeNotification):
                for item in notification.MonitoredItems:
                    tag = self._by_handle.get(item.ClientHandle)
                    if tag is not None:
                        readings.append(_reading(tag.point, item.Value, now))
            elif (
                isinstance(notification, ua.StatusChangeNotification)
                and not notification.Status.is_good()
            ):
                problem = session.lost or f"subscription ended ({status_name(notification.Status)})"
        return readings, problem

    # -- poll mode ---------------------------------------------------------------------

    async def _serve_polls(self, session: _Session, sink: ReadingSink) -> None:
        groups: dict[float, list[_Tag]] = {}
        for tag in self._tags:
            groups.setdefault(tag.interval, []).append(tag)
        due_at = dict.fromkeys(groups, time.monotonic())
        while True:
            now = time.monotonic()
            due = [interval for interval, at in due_at.items() if at <= now]
            if not due:
                await asyncio.sleep(min(due_at.values()) - now)
                if session.lost is not None:
                    raise _SessionLostError(session.lost)
                continue
            tags = [tag for interval in due for tag in groups[interval]]
            for interval in due:
                # skip cycles missed while the server was slow rather than bursting to catch up
                due_at[interval] = max(due_at[interval] + interval, now)
            started = time.perf_counter()
            readings = await self._read(session, tags)
            if self.breaker.failures or self.breaker.state is not BreakerState.CLOSED:
                self._delivered()
            self.stats.polls += 1
            self.stats.record_latency((time.perf_counter() - started) * 1000)
            self.stats.last_success = time.time()
            readings = self._by_exception(readings)
            if readings:
                self.stats.readings += len(readings)
                await sink(readings)

    def _by_exception(self, readings: list[Reading]) -> list[Reading]:
        """Drop GOOD values within their point's deadband of the last value reported."""
        kept = []
        for reading in readings:
            deadband = self._by_name[reading.metric].point.deadband
            previous = self._reported.get(reading.metric)
            if reading.quality is not Quality.GOOD:
                self._reported.pop(reading.metric, None)
            elif deadband is not None and isinstance(reading.value, int | float):
                if (
                    previous is not None
                    and not isinstance(previous, bool)
                    and abs(reading.value - previous) <= deadband
                ):
                    continue
                self._reported[reading.metric] = reading.value
            kept.append(reading)
        return kept

    async def _read(self, session: _Session, tags: Sequence[_Tag]) -> list[Reading]:
        """Read the Value of ``tags`` in as few Read requests as the limits allow."""

        async def read(batch: Sequence[_Tag]) -> list[ua.DataValue]:
            params = ua.ReadParameters(
                MaxAge=0,
                TimestampsToReturn=ua.TimestampsToReturn.Both,
                NodesToRead=[
                    ua.ReadValueId(NodeId=tag.node_id, AttributeId=ua.AttributeIds.Value)
                    for tag in batch
                ],
            )
            self.stats.requests += 1
            return await session.client.uaclient.read(params)

        try:
            values = await _batched(tags, session.read_chunk, read)
        except (ConnectionError, OSError, TimeoutError, ua.UaError) as exc:
            raise _SessionLostError(session.lost or _explain(exc, self.device)) from None
        now = time.time()
        return [_reading(tag.point, value, now) for tag, value in zip(tags, values, strict=True)]


async def _batched(
    items: Sequence[_T],
    size: int,
    call: Callable[[Sequence[_T]], Awaitable[list[_R]]],
) -> list[_R]:
    """``call`` on consecutive slices of at most ``size`` items, concatenated in order. A
    server that answers BadTooManyOperations gets the same items in halves."""
    results: list[_R] = []
    start = 0
    while start < len(items):
        batch = items[start : start + size]
        try:
            results.extend(await call(batch))
        except ua.UaStatusCodeError as exc:
            if exc.code != ua.StatusCodes.BadTooManyOperations or size == 1:
                raise
            size = max(1, size // 2)
            continue
        start += len(batch)
    return results


def _reading(point: OpcuaPoint, data: ua.DataValue, now: float) -> Reading:
    quality, reason = quality_of(data.StatusCode)
    times = {
        "source_time": _seconds(data.SourceTimestamp),
        "server_time": _seconds(data.ServerTimestamp),
        "read_time": now,
    }
    if quality is Quality.BAD:
        return Reading(point.name, None, point.unit, Quality.BAD, reason, **times)
    variant = data.Value
    value = variant.Value if variant is not None else None
    if value is None:
        return Reading(point.name, None, point.unit, quality, reason or "no value", **times)
    if not isinstance(value, bool | int | float) or (variant is not None and variant.is_array):
        kind = variant.VariantType.name if variant is not None else type(value).__name__
        return Reading(
            point.name, None, point.unit, Quality.BAD, f"a {kind} is not a number or bool", **times
        )
    if isinstance(value, float) and not math.isfinite(value):
        return Reading(
            point.name, None, point.unit, Quality.BAD, f"not a finite number ({value})", **times
        )
    return Reading(point.name, value, point.unit, quality, reason, **times)


_OPC_NULL_TIME = datetime(1601, 1, 2, tzinfo=UTC)


def _seconds(moment: datetime | None) -> float | None:
    """Unix seconds; OPC-UA's MinDateTime (1601) means "not given"."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment < _OPC_NULL_TIME:
        return None
    return moment.timestamp()


def _variant(name: str, value: Value, variant_type: ua.VariantType) -> ua.Variant:
    """``value`` encoded with the node's own data type, or a refusal saying why not."""
    if variant_type is ua.VariantType.Boolean:
        if isinstance(value, bool) or value in (0, 1):
            return ua.Variant(bool(value), variant_type)
        raise WriteRefusedError(f"{name}: the node is Boolean; {value!r} is not true/false or 0/1")
    if isinstance(value, bool):
        raise WriteRefusedError(f"{name}: the node is {variant_type.name}; a bool does not fit")
    if variant_type in (ua.VariantType.Float, ua.VariantType.Double):
        number = float(value)
        if not math.isfinite(number):
            raise WriteRefusedError(f"{name}: {value!r} is not a finite number")
        if variant_type is ua.VariantType.Float and abs(number) > _FLOAT_MAX:
            raise WriteRefusedError(f"{name}: {value!r} does not fit a Float")
        return ua.Variant(number, variant_type)
    if variant_type in _INTEGER_RANGES:
        if isinstance(value, float) and not value.is_integer():
            raise WriteRefusedError(
                f"{name}: the node is {variant_type.name}; {value!r} is not a whole number"
            )
        low, high = _INTEGER_RANGES[variant_type]
        if not low <= int(value) <= high:
            raise WriteRefusedError(
                f"{name}: {value!r} is outside the {variant_type.name} range {low}..{high}"
            )
        return ua.Variant(int(value), variant_type)
    if variant_type is ua.VariantType.Variant:  # BaseDataType or Number: keep the value's kind
        if isinstance(value, float):
            return ua.Variant(value, ua.VariantType.Double)
        return ua.Variant(int(value), ua.VariantType.Int64)
    raise WriteRefusedError(
        f"{name}: the node's data type is {variant_type.name}; only numbers and bools are written"
    )


def _check_identity(
    device: OpcuaDevice, endpoint: ua.EndpointDescription, mode: ua.MessageSecurityMode
) -> None:
    """Refuse, before logging in, an identity the endpoint does not take, and a password
    that would cross the network in clear text."""
    tokens = {token.TokenType: token for token in endpoint.UserIdentityTokens or []}
    if device.security.username is None:
        if ua.UserTokenType.Anonymous not in tokens:
            raise OpcuaConnectError(
                f"{device.endpoint} does not accept anonymous logins; set security.username "
                "and security.password"
            )
        return
    token = tokens.get(ua.UserTokenType.UserName)
    if token is None:
        raise OpcuaConnectError(f"{device.endpoint} does not accept user name logins")
    token_policy = token.SecurityPolicyUri or endpoint.SecurityPolicyUri
    if (
        token_policy == security_policies.SecurityPolicyNone.URI
        and mode != ua.MessageSecurityMode.SignAndEncrypt
    ):
        raise OpcuaConnectError(
            f"{device.endpoint} would receive the password in clear text (neither the channel "
            "nor the user token is encrypted); use Basic256Sha256 with SignAndEncrypt"
        )


def _alive(client: Client) -> bool:
    return client.state is UaClientState.CONNECTED


def _on_lost(session: _Session) -> Callable[[Exception], Awaitable[None]]:
    async def lost(exc: Exception) -> None:
        detail = str(exc) or type(exc).__name__
        session.lost = detail if "transport lost" in detail else f"transport lost: {detail}"

    return lost


def _describe(endpoints: Iterable[ua.EndpointDescription]) -> str:
    found = sorted(
        {
            f"{ep.SecurityPolicyUri.rsplit('#', 1)[-1]}/{ep.SecurityMode.name.rstrip('_')}"
            for ep in endpoints
        }
    )
    return ", ".join(found) if found else "no endpoint at all"


def _first_certificate(der: bytes | None) -> bytes:
    """The leading certificate of a DER chain (servers may send theirs with its issuers)."""
    if not der:
        raise OpcuaConnectError("the server offers a secure endpoint without a certificate")
    if der[1] & 0x80:
        width = der[1] & 0x7F
        length = int.from_bytes(der[2 : 2 + width], "big") + 2 + width
    else:
        length = der[1] + 2
    return der[:length]


_HINTS = {
    ua.StatusCodes.BadUserAccessDenied: "the server refused the user {user}: wrong user name or "
    "password, or the user may not log in",
    ua.StatusCodes.BadIdentityTokenRejected: "the server does not accept {identity} logins",
    ua.StatusCodes.BadIdentityTokenInvalid: "the server does not accept {identity} logins",
    ua.StatusCodes.BadCertificateUntrusted: "the server does not trust the agent certificate "
    "{cert}: add it to the server's trusted certificates",
    ua.StatusCodes.BadSecurityChecksFailed: "the server rejected the agent certificate {cert} "
    "(is it trusted by the server, and does its application URI match?)",
    ua.StatusCodes.BadCertificateUriInvalid: "the application URI in the agent certificate "
    "{cert} is not accepted by the server",
    ua.StatusCodes.BadCertificateTimeInvalid: "the agent certificate {cert} has expired or is "
    "not yet valid",
    ua.StatusCodes.BadSecurityPolicyRejected: "the server rejected security policy {policy}",
    ua.StatusCodes.BadTooManySessions: "the server has no room for another session",
}


def _explain(exc: BaseException, device: OpcuaDevice) -> str:
    """Turn a library exception into a sentence about the device."""
    parts = urlsplit(device.endpoint)
    where = f"{parts.hostname}:{parts.port or 4840}"
    security = device.security
    if isinstance(exc, ua.UaStatusCodeError):
        name = status_name(exc.code)
        hint = _HINTS.get(exc.code)
        if hint is None:
            return f"{name} from {device.endpoint}"
        text = hint.format(
            user=repr(security.username) if security.username else "(anonymous)",
            identity="user name" if security.username else "anonymous",
            cert=security.cert,
            policy=security.policy,
        )
        return f"{text} ({name})"
    if isinstance(exc, ConnectionRefusedError):
        return f"connection refused by {where}"
    if isinstance(exc, TimeoutError):
        return f"no answer from {where} within {device.timeout:g}s"
    if isinstance(exc, ConnectionError) and str(exc):
        return f"{where}: {exc}"
    if isinstance(exc, OSError):
        return f"cannot reach {where}: {exc.strerror or exc}"
    if isinstance(exc, ua.UaError) and "certificate mismatch" in str(exc).lower():
        return f"{device.endpoint} changed its certificate during the handshake"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
