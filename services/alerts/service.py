"""The alerts domain: rules, alerts, silences and the event feed, in plain Python.

Callers pass the acting user (``None`` when authentication is off, recorded as
``anonymous``); failures are the plain exceptions of :mod:`smartcity.runtime.errors`. What
changes alerts runs through the :class:`~.evaluator.Evaluator`, under the lock of the
alert's partition, so people and the rule engine never overwrite each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import partial

from smartcity.fields import FieldHost
from smartcity.runtime.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from smartcity.runtime.storage.paging import encode_page_token
from smartcity.services.alerts import lifecycle
from smartcity.services.alerts.evaluator import Evaluator
from smartcity.services.alerts.model import (
    ANONYMOUS,
    MICROS,
    Alert,
    AlertState,
    Event,
    Matcher,
    Page,
    PageRequest,
    Severity,
    Silence,
    matches_all,
    page_key,
)
from smartcity.services.alerts.rulebook import Rulebook
from smartcity.services.alerts.store import AlertFilter, AlertStore

__all__ = ["AlertGroup", "AlertsService"]

LAST_TIME = 253_402_300_799 * MICROS
"""9999-12-31T23:59:59Z, the last time a protobuf Timestamp holds."""
WATCH_POLL_SECONDS = 1.0
"""How often a watch looks for events of other replicas without being woken."""
"""Rule fields whose change resolves the rule's open alerts: they start afresh."""


@dataclass(frozen=True, slots=True)
class AlertGroup:
    labels: dict[str, str]
    alerts: list[Alert]
    max_severity: Severity
    unhandled: int


def _actor(user: str | None) -> str:
    return user or ANONYMOUS


class AlertsService:
    def __init__(self, store: AlertStore, fields: FieldHost, evaluator: Evaluator) -> None:
        self.store = store
        self.fields = fields
        self.evaluator = evaluator
        self.rules = Rulebook(store, fields, evaluator)
        self._changed = asyncio.Event()

    def notify_watchers(self, events: Sequence[Event] = ()) -> None:
        """Wake the watches (after a local commit, or an event of another replica)."""
        self._changed.set()
        self._changed = asyncio.Event()

    # -- alerts -----------------------------------------------------------------------------

    async def list_alerts(
        self,
        wanted: AlertFilter,
        matchers: Sequence[Matcher],
        *,
        include_silenced: bool = False,
        include_inhibited: bool = False,
        fields: frozenset[str] | None = None,
        page: PageRequest | None = None,
    ) -> tuple[Page[Alert], int]:
        """Alerts most severe first, then newest; ``fields`` (when given) limits them to
        the fields the caller may view. Also the revision the listing reflects."""
        page = page or PageRequest()
        _, revision = await self.store.revisions()
        key = page_key(page, "alerts", 3)
        after = None if key is None else (int(key[0]), int(key[1]), key[2])
        limit, found, exhausted = page.limit, [], False
        while len(found) < limit and not exhausted:
            chunk = await self.store.alerts(wanted, after, limit * 2)
            exhausted = len(chunk) < limit * 2
            for alert in chunk:
                after = (int(alert.severity), alert.active_time, alert.fingerprint)
                if (
                    (include_silenced or not alert.silenced_by)
                    and (include_inhibited or not alert.inhibited_by)
                    and (fields is None or alert.field in fields)
                    and matches_all(matchers, alert.labels)
                ):
                    found.append(alert)
                    if len(found) == limit:
                        exhausted = exhausted and alert is chunk[-1]
                        break
        token = ""
        if found and not exhausted:
            last = found[-1]
            token = encode_page_token(
                "alerts", [str(int(last.severity)), str(last.active_time), last.fingerprint]
            )
        return Page(found, token), revision

    async def get_alert(self, fingerprint: str) -> Alert:
        alert = await self.store.alert(fingerprint)
        if alert is None:
            raise NotFound(f"no alert has fingerprint {fingerprint!r}")
        return alert

    async def history(self, fingerprint: str, page: PageRequest) -> Page[Event]:
        await self.get_alert(fingerprint)
        key = page_key(page, "history", 1)
        events = await self.store.events_after(
            int(key[0]) if key else 0, page.limit + 1, fingerprint
        )
        more = len(events) > page.limit
        events = events[: page.limit]
        token = encode_page_token("history", [str(events[-1].revision)]) if more else ""
        return Page(events, token)

    async def acknowledge(self, fingerprint: str, user: str | None, comment: str) -> Alert:
        act = partial(_ack, _actor(user), comment)
        return await self.evaluator.change(fingerprint, act)

    async def unacknowledge(self, fingerprint: str, user: str | None, comment: str) -> Alert:
        act = partial(_unack, _actor(user), comment)
        return await self.evaluator.change(fingerprint, act)

    async def assign(
        self, fingerprint: str, assignee: str | None, user: str | None, comment: str
    ) -> Alert:
        act = partial(_assign, assignee, _actor(user), comment)
        return await self.evaluator.change(fingerprint, act)

    async def groups(
        self, group_by: Sequence[str], field: str, matchers: Sequence[Matcher]
    ) -> list[AlertGroup]:
        by = list(group_by) or ["field", "site"]
        alerts = await self.store.alerts(AlertFilter(field=field), None, 100_000)
        grouped: dict[tuple[str, ...], list[Alert]] = {}
        for alert in alerts:
            if matches_all(matchers, alert.labels):
                grouped.setdefault(tuple(alert.labels.get(n, "") for n in by), []).append(alert)
        groups = [
            AlertGroup(
                dict(zip(by, values, strict=True)),
                members,
                max(a.severity for a in members),
                sum(
                    1
                    for a in members
                    if a.state is AlertState.FIRING
                    and not a.suppressed
                    and a.acknowledged_by is None
                ),
            )
            for values, members in grouped.items()
        ]
        groups.sort(key=lambda g: (-int(g.max_severity), sorted(g.labels.items())))
        return groups

    # -- silences ---------------------------------------------------------------------------

    async def create_silence(self, silence: Silence, user: str | None, request_id: str) -> Silence:
        if request_id:
            earlier = await self.store.request("silence", request_id)
            if earlier is not None:
                return await self._silence(earlier)
        problems = []
        if not silence.matchers:
            problems.append("silence.matchers: at least one matcher is required")
        for index, matcher in enumerate(silence.matchers):
            problems += matcher.problems(f"silence.matchers[{index}]")
        now = self.evaluator.now()
        start = silence.start_time or now
        if not 0 <= start <= LAST_TIME:
            problems.append("silence.start_time: not a time between 1970 and 9999")
        if silence.end_time <= start or silence.end_time > LAST_TIME:
            problems.append("silence.end_time: required, after start_time, before 10000")
        if problems:
            raise InvalidArgument("; ".join(problems))
        created = Silence(
            uuid.uuid4().hex, silence.matchers, start, silence.end_time, silence.comment,
            _actor(user), now,
        )  # fmt: skip
        async with self.store.transaction() as w:
            await w.put_silence(created)
            if request_id:
                await w.put_request("silence", request_id, created.id)
        return created

    async def _silence(self, silence_id: str) -> Silence:
        for silence in await self.store.silences():
            if silence.id == silence_id:
                return silence
        raise NotFound(f"no silence has id {silence_id!r}")

    async def list_silences(self, states: Sequence[str]) -> list[Silence]:
        now = self.evaluator.now()
        wanted = set(states) or {"pending", "active"}
        return [s for s in await self.store.silences() if s.state(now) in wanted]

    async def expire_silence(self, silence_id: str) -> Silence:
        silence = await self._silence(silence_id)
        now = self.evaluator.now()
        if silence.end_time > now:
            silence = Silence(
                silence.id, silence.matchers, min(silence.start_time, now), now,
                silence.comment, silence.created_by, silence.create_time,
            )  # fmt: skip
            async with self.store.transaction() as w:
                await w.put_silence(silence)
        return silence

    # -- the feed ---------------------------------------------------------------------------

    async def watch(self, since: int) -> AsyncIterator[Event]:
        """Every event after revision ``since`` (0: from now on), then live ones."""
        low, high = await self.store.revisions()
        if since and low and since < low - 1:
            raise FailedPrecondition(
                f"revision {since} is older than the kept history (from {low}); list, then "
                "watch from the listing's revision"
            )
        last = since or high
        while True:
            changed = self._changed
            events = await self.store.events_after(last, 500)
            for event in events:
                last = event.revision
                yield event
            if not events:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(WATCH_POLL_SECONDS):
                        await changed.wait()


def _ack(user: str, comment: str, alert: Alert, now: int) -> list[Event]:
    return lifecycle.acknowledge(alert, user, comment, now)


def _unack(user: str, comment: str, alert: Alert, now: int) -> list[Event]:
    return lifecycle.unacknowledge(alert, user, comment, now)


def _assign(assignee: str | None, user: str, comment: str, alert: Alert, now: int) -> list[Event]:
    return lifecycle.assign(alert, assignee, user, comment, now)
