"""The outbox hands every queued notification to the receivers' dispatcher once, as the
receivers' own ``Notification`` type: a refusal retrying cannot cure is recorded and not
retried, a dispatcher that cannot take it now gets it again later."""

from __future__ import annotations

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
