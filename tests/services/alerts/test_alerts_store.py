"""The alerts store, the same tests on SQLite and PostgreSQL: migrations, rules with their
revision, the alert listing with its filters and pages, events in revision order (also when
transactions run at once), silences, requests, and the outbox marks."""

from __future__ import annotations

import asyncio

import pytest
from alerts_support import SECOND, T0, Clock, batch, city_fields, evaluator, install, reading
from alerts_support import rule as make_rule

from smartcity.services.alerts.lifecycle import event
from smartcity.services.alerts.model import (
    Alert,
    AlertState,
    EventType,
    Matcher,
    MatchType,
    PageRequest,
    Severity,
    Silence,
)
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import AlertFilter, AlertStore, open_store


async def test_a_store_opens_again_on_its_migrated_schema(store_url: str) -> None:
    for _ in range(2):
        store = open_store(store_url)
        await store.open()
        await store.ping()
        assert await store.rules_revision() == 0
        assert await store.schema_version() >= 1
        await store.close()


async def test_rules_keep_their_definition_and_bump_the_revision(store: AlertStore) -> None:
    first = make_rule(labels={"team": "cap-nuoc"}, annotations={"summary": "Đục quá 2 NTU"})
    await install(store, first)
    assert await store.rule(first.id) == first
    assert await store.rules_revision() == 1
    async with store.transaction() as w:
        await w.delete_rule(first.id)
    assert await store.rule(first.id) is None
    assert await store.rules_revision() == 2


def _alert(n: int, severity: Severity, field: str = "water_supply") -> Alert:
    return Alert(
        fingerprint=f"fp{n:03d}",
        rule_id="r",
        state=AlertState.FIRING,
        severity=severity,
        rule_severity=severity,
        field=field,
        labels={"field": field, "site": "s", "device": f"d{n}", "zone": "a" if n % 2 else "b"},
        annotations={},
        active_time=T0 + n * SECOND,
        silenced_by=("x",) if n % 5 == 0 else (),
    )


async def test_listing_orders_filters_and_pages(store: AlertStore) -> None:
    alerts = [
        _alert(n, Severity(1 + n % 3), "water_supply" if n < 20 else "electricity")
        for n in range(1, 31)
    ]
    async with store.transaction() as w:
        await w.save_alerts((a, None, "g") for a in alerts)
    service = AlertsService(store, city_fields(), evaluator(store, Clock()))
    wanted = AlertFilter(field="water_supply", min_severity=Severity.WARNING)
    matchers = [Matcher("zone", "a")]
    seen: list[Alert] = []
    token = ""
    while True:
        page, _ = await service.list_alerts(wanted, matchers, page=PageRequest(size=3, token=token))
        seen += page.items
        token = page.next_token
        if not token:
            break
    expected = sorted(
        (
            a
            for a in alerts
            if a.field == "water_supply"
            and a.severity >= Severity.WARNING
            and a.labels["zone"] == "a"
            and not a.silenced_by
        ),
        key=lambda a: (-a.severity, -a.active_time, a.fingerprint),
    )
    assert [a.fingerprint for a in seen] == [a.fingerprint for a in expected]
    assert len(seen) > 3  # it took several pages
    everything, _ = await service.list_alerts(
        AlertFilter(), [Matcher("device", "d1.*", MatchType.REGEX)], include_silenced=True
    )
    assert {a.fingerprint for a in everything.items} == {"fp001"} | {
        f"fp{n:03d}" for n in range(10, 20)
    }


async def test_events_get_increasing_revisions_even_from_concurrent_transactions(
    store: AlertStore,
) -> None:
    async def append(n: int) -> None:
        alert = _alert(n, Severity.INFO)
        async with store.transaction([n % 7]) as w:
            await w.save_alerts([(alert, None, "g")])
            await w.append_events([event(EventType.FIRING, alert, T0 + n)])

    await asyncio.gather(*(append(n) for n in range(40)))
    events = await store.events_after(0, 1000)
    assert [e.revision for e in events] == list(range(1, 41))
    assert await store.revisions() == (1, 40)
    assert [e.revision for e in await store.events_after(38, 10)] == [39, 40]
    await store.mark_published([e.revision for e in events[:30]])
    assert [e.revision for e in await store.unpublished(100)] == list(range(31, 41))
    await store.forget_events(T0 + 10)  # the published ones dated before T0 + 10 µs
    kept = [e.revision for e in await store.events_after(0, 1000)]
    assert kept == [e.revision for e in events if e.revision > 30 or e.time >= T0 + 10]
    assert len(kept) < 40


async def test_silences_requests_and_notifications(store: AlertStore) -> None:
    service = AlertsService(store, city_fields(), evaluator(store, Clock()))
    silence = Silence("", (Matcher("site", "cau-do"),), 0, T0 + 60 * SECOND, "why", "", 0)
    created = await service.create_silence(silence, "a.b", "req-1")
    assert await service.create_silence(silence, "a.b", "req-1") == created
    assert [s.id for s in await service.list_silences([])] == [created.id]
    expired = await service.expire_silence(created.id)
    assert expired.end_time == T0
    assert await service.list_silences(["expired"]) == [expired]
    async with store.transaction() as w:
        await w.queue_notification('{"n": 1}', T0)
        await w.queue_notification('{"n": 2}', T0)
    pending = await store.pending_notifications(10)
    assert [body for _, body in pending] == ['{"n": 1}', '{"n": 2}']
    await store.mark_submitted([pending[0][0]])
    assert [body for _, body in await store.pending_notifications(10)] == ['{"n": 2}']


async def test_evaluation_state_survives_a_reopened_store(store_url: str) -> None:
    first = open_store(store_url)
    await first.open()
    await install(first, make_rule(for_duration=60 * SECOND))
    clock = Clock()
    [pending] = await evaluator(first, clock).evaluate([batch([reading("turbidity", 3.0, T0, 1)])])
    assert pending.type is EventType.PENDING
    await first.close()
    second = open_store(store_url)
    await second.open()
    try:
        clock.at(T0 + 60 * SECOND)
        [fired] = await evaluator(second, clock).tick()
        assert fired.type is EventType.FIRING
        assert fired.alert.active_time == T0
    finally:
        await second.close()


@pytest.mark.parametrize("url", ["mysql://x", "sqlite:///:memory:"])
async def test_unusable_urls_are_refused(url: str) -> None:
    from smartcity.services.alerts.store import StoreError

    async def opening() -> None:
        await open_store(url).open()

    with pytest.raises(StoreError):
        await opening()
