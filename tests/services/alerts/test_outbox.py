"""The outbox hands every queued notification to the receivers' dispatcher once, as the
receivers' own ``Notification`` type: a refusal retrying cannot cure is recorded and not
retried, a dispatcher that cannot take it now gets it again later."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from alerts_support import T0, Clock, batch, evaluator, install, reading, rule

from smartcity.runtime.errors import InvalidArgument, Unavailable
from smartcity.services.alerts.messages import event_message
from smartcity.services.alerts.outbox import Outbox
from smartcity.services.alerts.receivers import Notification
from smartcity.services.alerts.store import AlertStore


class Dispatcher:
    """Takes notifications as the receivers' dispatcher does; scripted to refuse some."""

    def __init__(self, *refusals: Exception) -> None:
        self.taken: list[Notification] = []
        self.refusals = list(refusals)

    async def submit(self, notification: Notification) -> int:
        if self.refusals:
            raise self.refusals.pop(0)
        self.taken.append(notification)
        return len(self.taken)


def _outbox(store: AlertStore, dispatcher: Dispatcher) -> Outbox:
    return Outbox(
        store,
        None,
        encode=lambda e: event_message(e).SerializeToString(),
        submitter=dispatcher,
        build=Notification.from_dict,
    )


async def test_notifications_reach_the_dispatcher_once(store: AlertStore) -> None:
    await install(store, rule())
    ev = evaluator(store, Clock())
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)], device=d) for d in ("a", "b")])
    await ev.tick()
    dispatcher = Dispatcher(Unavailable("outbox full"))
    outbox = _outbox(store, dispatcher)
    await outbox.drain()
    assert dispatcher.taken == []  # could not take it now: it stays queued
    await outbox.drain()
    [sent] = dispatcher.taken
    assert (sent.receiver, sent.status) == ("default", "firing")
    assert sorted(a.labels["device"] for a in sent.alerts) == ["a", "b"]
    assert sent.common_labels["alertname"] == "turbidity high"
    await outbox.drain()
    assert len(dispatcher.taken) == 1
    assert [done for _, _, done in await store.notifications()] == [True]


async def test_a_receiver_nobody_configured_is_recorded_not_retried(store: AlertStore) -> None:
    await install(store, rule())
    ev = evaluator(store, Clock())
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    await ev.tick()
    dispatcher = Dispatcher(InvalidArgument("receiver 'default' is not configured"))
    outbox = _outbox(store, dispatcher)
    await outbox.drain()
    await outbox.drain()
    assert dispatcher.taken == []
    assert await store.pending_notifications(10) == []


class SwallowingBus:
    """Publishes as nats-py may on Python 3.11: a cancellation that arrives while it waits
    for the acknowledgement is lost (the call returns as if acknowledged)."""

    def __init__(self) -> None:
        self.published = 0

    async def jetstream_publish(self, subject: str, data: bytes, **_: object) -> None:
        self.published += 1
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.01)


async def test_the_outbox_stops_when_cancelled_even_if_a_publish_swallows_it(
    store: AlertStore,
) -> None:
    await install(store, rule())
    ev = evaluator(store, Clock())
    devices = [f"d{n}" for n in range(40)]
    await ev.evaluate([batch([reading("turbidity", 3.0, T0, 1)], device=d) for d in devices])
    await ev.tick()
    bus = SwallowingBus()
    outbox = Outbox(store, bus, encode=lambda e: event_message(e).SerializeToString())  # type: ignore[arg-type]
    task = asyncio.create_task(outbox.run())
    deadline = asyncio.get_running_loop().time() + 5
    while bus.published == 0:
        assert asyncio.get_running_loop().time() < deadline, "nothing published"
        await asyncio.sleep(0.005)
    task.cancel()  # lands inside a publish, which swallows it
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), 5)
    assert task.cancelled()
    assert bus.published < 2 * len(devices)  # it stopped, rather than drained on and waited
