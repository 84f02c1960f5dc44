"""What a receiver is handed: one notification of a group of alerts, as Alertmanager's
notifiers see one (``template.Data`` in Alertmanager's terms), and what became of each
attempt to deliver it.

The types check themselves when built, so a receiver never meets a malformed notification:
text must be encodable as UTF-8 (a lone surrogate is refused, since neither JSON nor an
e-mail could carry it), times must be timezone-aware, and a group's status must agree with
its alerts'. Anything else a label or annotation holds (control characters, any length)
is accepted and escaped by the receiver that renders it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from types import MappingProxyType
from typing import Any, Literal, get_args

from smartcity.runtime.errors import InvalidArgument

Status = Literal["firing", "resolved"]
STATUSES: tuple[str, ...] = get_args(Status)


def _text(value: object, what: str, *, required: bool = False) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    if required and not value:
        raise ValueError(f"{what} cannot be empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} holds a lone surrogate, which UTF-8 cannot carry") from None
    return value


def _labels(value: object, what: str) -> Mapping[str, str]:
    if not isinstance(value, Mapping):
        raise TypeError(f"{what} must be a mapping of str to str, not {type(value).__name__}")
    checked = {
        _text(key, f"{what}: a name", required=True): _text(item, f"{what}[{key!r}]")
        for key, item in value.items()
    }
    return MappingProxyType(checked)


def _moment(value: object, what: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise TypeError(f"{what} must be a timezone-aware datetime, not {value!r}")
    return value


def _status(value: object, what: str) -> str:
    if value not in STATUSES:
        raise ValueError(f"{what} must be one of {', '.join(STATUSES)}, not {value!r}")
    return str(value)


def _set(instance: object, name: str, value: object) -> None:
    object.__setattr__(instance, name, value)


@dataclass(frozen=True, slots=True)
class NotifiedAlert:
    """One alert of a notification. ``ends_at`` is when a resolved alert ended (required
    then); a firing alert has none."""

    fingerprint: str
    status: Status
    labels: Mapping[str, str] = field(hash=False)
    annotations: Mapping[str, str] = field(hash=False)
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str = ""

    def __post_init__(self) -> None:
        fingerprint = _text(self.fingerprint, "alert fingerprint", required=True)
        what = f"alert {fingerprint!r}"
        status = _status(self.status, f"{what}: status")
        _set(self, "labels", _labels(self.labels, f"{what}: labels"))
        _set(self, "annotations", _labels(self.annotations, f"{what}: annotations"))
        starts_at = _moment(self.starts_at, f"{what}: starts_at")
        _text(self.generator_url, f"{what}: generator_url")
        if self.ends_at is None:
            if status == "resolved":
                raise ValueError(f"{what}: a resolved alert needs ends_at")
            return
        if _moment(self.ends_at, f"{what}: ends_at") < starts_at:
            raise ValueError(f"{what}: ends_at lies before starts_at")

    def to_dict(self) -> dict[str, Any]:
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": None if self.ends_at is None else self.ends_at.isoformat(),
            "generator_url": self.generator_url,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NotifiedAlert:
        ends_at = data["ends_at"]
        return cls(
            fingerprint=data["fingerprint"],
            status=data["status"],
            labels=data["labels"],
            annotations=data["annotations"],
            starts_at=datetime.fromisoformat(data["starts_at"]),
            ends_at=None if ends_at is None else datetime.fromisoformat(ends_at),
            generator_url=data["generator_url"],
        )


@dataclass(frozen=True, slots=True)
class Notification:
    """A group of alerts for one receiver: what Alertmanager sends in one webhook call.

    ``status`` is ``firing`` while any alert of the group fires, ``resolved`` once all
    have; ``truncated`` counts alerts of the group left out of ``alerts``.
    """

    receiver: str
    group_key: str
    group_labels: Mapping[str, str] = field(hash=False)
    common_labels: Mapping[str, str] = field(hash=False)
    common_annotations: Mapping[str, str] = field(hash=False)
    alerts: Sequence[NotifiedAlert]
    status: Status
    truncated: int = 0

    def __post_init__(self) -> None:
        receiver = _text(self.receiver, "notification: receiver", required=True)
        what = f"notification for {receiver!r}"
        _text(self.group_key, f"{what}: group_key", required=True)
        _set(self, "group_labels", _labels(self.group_labels, f"{what}: group_labels"))
        _set(self, "common_labels", _labels(self.common_labels, f"{what}: common_labels"))
        _set(
            self,
            "common_annotations",
            _labels(self.common_annotations, f"{what}: common_annotations"),
        )
        if isinstance(self.alerts, str | bytes) or not isinstance(self.alerts, Sequence):
            raise TypeError(f"{what}: alerts must be a list of NotifiedAlert")
        alerts = tuple(self.alerts)
        if not alerts:
            raise ValueError(f"{what}: alerts cannot be empty")
        for index, alert in enumerate(alerts):
            if not isinstance(alert, NotifiedAlert):
                raise TypeError(f"{what}: alert {index} is a {type(alert).__name__}")
        _set(self, "alerts", alerts)
        status = _status(self.status, f"{what}: status")
        expected = "firing" if any(alert.status == "firing" for alert in alerts) else "resolved"
        if status != expected:
            raise ValueError(
                f"{what}: status {status!r} disagrees with its alerts, which make it {expected!r}"
            )
        if isinstance(self.truncated, bool) or not isinstance(self.truncated, int):
            raise TypeError(f"{what}: truncated must be an int")
        if self.truncated < 0:
            raise ValueError(f"{what}: truncated cannot be negative")

    def to_dict(self) -> dict[str, Any]:
        return {
            "receiver": self.receiver,
            "group_key": self.group_key,
            "group_labels": dict(self.group_labels),
            "common_labels": dict(self.common_labels),
            "common_annotations": dict(self.common_annotations),
            "alerts": [alert.to_dict() for alert in self.alerts],
            "status": self.status,
            "truncated": self.truncated,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Notification:
        """The notification :meth:`to_dict` gave; anything else is refused with
        :class:`~smartcity.runtime.errors.InvalidArgument` saying what is wrong."""
        try:
            return cls(
                receiver=data["receiver"],
                group_key=data["group_key"],
                group_labels=data["group_labels"],
                common_labels=data["common_labels"],
                common_annotations=data["common_annotations"],
                alerts=tuple(NotifiedAlert.from_dict(item) for item in data["alerts"]),
                status=data["status"],
                truncated=data["truncated"],
            )
        except KeyError as exc:
            raise InvalidArgument(f"not a notification: {exc.args[0]!r} is missing") from None
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"not a notification: {exc}") from None


class Outcome(StrEnum):
    """What one delivery attempt came to."""

    DELIVERED = "delivered"
    RETRY = "retry"
    """Failed in a way a later attempt may cure (a 5xx, a timeout, a refused connection)."""
    FAILED = "failed"
    """Failed for good: refused by the receiver (a 4xx, a rejected recipient), or the last
    attempt before the dispatcher gave up."""


class DeliveryState(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class SendResult:
    """What a receiver reports of one attempt; ``code`` is the HTTP status or the SMTP
    reply code when there was one."""

    outcome: Outcome
    code: int | None = None
    error: str = ""


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    """One recorded attempt: when it started, how long it took, what came of it."""

    notification_id: int
    number: int
    receiver: str
    started_at: datetime
    duration_seconds: float
    outcome: Outcome
    code: int | None
    error: str


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """Where a submitted notification stands."""

    notification_id: int
    receiver: str
    state: DeliveryState
    submitted_at: datetime
    attempts: int
    next_attempt_at: datetime | None
    error: str
