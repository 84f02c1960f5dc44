"""What a service gives the JetStream consumer: a :class:`Handler` that decodes one message
and commits a fetch's items at once, and :class:`Rejected`, its verdict on a message that can
never be handled (see :mod:`smartcity.runtime.consumer`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from nats.aio.msg import Msg

__all__ = ["Handler", "Rejected"]

T = TypeVar("T")


class Rejected(Exception):  # noqa: N818 - a verdict on a message, not a failure of ours
    """The message can never be handled; the text says why (it goes with the dead letter)."""


class Handler(Protocol[T]):
    """What a service gives the consumer."""

    def decode(self, msg: Msg) -> T:
        """The item ``msg`` carries; :class:`Rejected` when it can never be one. The
        message's span is the current one while this runs."""
        ...

    async def commit(self, items: Sequence[T]) -> None:
        """Make ``items`` durable together (all or nothing); the messages are acknowledged
        once this returns. Called again with the same items after a failure, so it must be
        idempotent; and called for the next fetch before this call returned (up to
        ``commits_in_flight`` at once), so a store must keep concurrent commits apart."""
        ...

    def is_transient(self, error: Exception) -> bool:
        """Whether ``error`` from :meth:`commit` means "the store cannot now" (wait and
        retry everything) rather than "the store refuses these items"."""
        ...
