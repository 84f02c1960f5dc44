"""Subscribe mode: one subscription whose publishing interval is the device's poll interval;
every point is a monitored item with its own sampling interval, a queue long enough to keep
every sample taken between two publishes, and an absolute deadband filter when the point has
one. Items are created in batches no larger than the server's ``MaxMonitoredItemsPerCall``.
Each Publish response becomes one batch of readings.

:func:`subscribe` also returns how long the driver may hear nothing (no data, no keep-alive)
before it takes the session for lost: 1.5 keep-alive periods (revised publishing interval x
revised keep-alive count) plus the request timeout, so that a half-open TCP connection or a
server that silently dropped the subscription is caught too.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from asyncua import ua
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import Subscription

from smartcity.agents.driver import DeviceStats
from smartcity.agents.opcua.errors import SessionLostError, explain
from smartcity.agents.opcua.nodes import Tag, reading_of
from smartcity.agents.opcua.session import Session, batched
from smartcity.agents.opcua.status import status_name
from smartcity.agents.profile import OpcuaDevice
from smartcity.agents.reading import Quality, Reading

# one logger for the driver and the parts it is made of
log = structlog.get_logger("smartcity.agents.opcua.driver")

KEEPALIVE_PERIOD_MIN = 1.0
"""Shortest keep-alive period requested (seconds); the period is at least 3 publishes."""
WATCHDOG_MARGIN = 1.5
PUBLISH_BACKLOG = 64
"""Publish responses waiting for the sink. When full, the driver stops asking the server
for more, and the server holds the notifications in its monitored-item queues."""


class Feed(Subscription):
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


async def subscribe(
    session: Session, device: OpcuaDevice, tags: Sequence[Tag], stats: DeviceStats
) -> tuple[Feed, float, list[Reading]]:
    """The subscription of ``tags``, the silence after which the session counts as lost
    (seconds), and the points whose monitored items the server refused, as BAD readings."""
    publishing = device.poll_interval
    keepalive_count = max(1, math.ceil(max(3 * publishing, KEEPALIVE_PERIOD_MIN) / publishing))
    params = ua.CreateSubscriptionParameters(
        RequestedPublishingInterval=publishing * 1000,
        RequestedLifetimeCount=keepalive_count * 4,
        RequestedMaxKeepAliveCount=keepalive_count,
        MaxNotificationsPerPublish=0,
        PublishingEnabled=True,
        Priority=0,
    )
    feed = Feed(session.client.uaclient.session, params)
    try:
        result = await feed.init()
        revised_ms = result.RevisedPublishingInterval or publishing * 1000
        keepalive = (revised_ms / 1000) * (result.RevisedMaxKeepAliveCount or keepalive_count)
        bound = keepalive * WATCHDOG_MARGIN + device.timeout

        async def create(
            batch: Sequence[Tag],
        ) -> list[int | ua.StatusCode]:
            requests = [_item_request(tag, revised_ms) for tag in batch]
            stats.requests += 1
            return await feed.create_monitored_items(requests)

        results = await batched(tags, session.items_per_call, create)
    except (ConnectionError, OSError, TimeoutError, ua.UaError) as exc:
        raise SessionLostError(f"cannot subscribe: {explain(exc, device)}") from None
    now = time.time()
    refused = [
        Reading(tag.point.name, None, tag.point.unit, Quality.BAD, status_name(res), read_time=now)
        for tag, res in zip(tags, results, strict=True)
        if isinstance(res, ua.StatusCode)
    ]
    if refused:
        log.warning(
            "opcua monitored items refused",
            device=device.device,
            points={r.metric: r.reason for r in refused},
        )
    return feed, bound, refused


def _item_request(tag: Tag, publishing_ms: float) -> ua.MonitoredItemCreateRequest:
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


def notifications(
    data: Iterable[Any], session: Session, by_handle: Mapping[int, Tag]
) -> tuple[list[Reading], str | None]:
    """The readings of one Publish response, and why the subscription ended if it did."""
    now = time.time()
    readings: list[Reading] = []
    problem = None
    for notification in data:
        if isinstance(notification, ua.DataChangeNotification):
            for item in notification.MonitoredItems:
                tag = by_handle.get(item.ClientHandle)
                if tag is not None:
                    readings.append(reading_of(tag.point, item.Value, now))
        elif (
            isinstance(notification, ua.StatusChangeNotification)
            and not notification.Status.is_good()
        ):
            problem = session.lost or f"subscription ended ({status_name(notification.Status)})"
    return readings, problem
