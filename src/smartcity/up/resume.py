"""What a data folder keeps across runs of ``smartcity up``, and how a run takes it up again.

One run per folder (:func:`locked`): a second would share its stores and buffers.
``seeded.json`` (:class:`.seed.SeedState`) says what earlier runs made, so that nothing is
seeded twice (:class:`CityState`): the accounts, made on the first run before identity
starts, and the alert rules and site records, made once identity, alerts and records serve.
The NATS users keep their passwords by themselves (:func:`write_authorization` keeps the
credentials it finds).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from smartcity.runtime.errors import FailedPrecondition
from smartcity.up import seed, seeding
from smartcity.up.plan import Layout, Site
from smartcity.up.ports import Endpoints

__all__ = ["CityState", "locked"]


@contextlib.contextmanager
def locked(layout: Layout) -> Iterator[None]:
    """One ``smartcity up`` per data folder: a second would share stores and buffers."""
    layout.root.mkdir(parents=True, exist_ok=True)
    with layout.lock_file.open("a+", encoding="utf-8") as lock:
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            holder = lock.read().strip() or "?"
            raise FailedPrecondition(
                f"another smartcity up (pid {holder}) runs on {layout.root}; stop it first"
            ) from None
        lock.seek(0)
        lock.truncate()
        lock.write(f"{os.getpid()}\n")
        lock.flush()
        yield


@dataclass
class CityState:
    """What earlier runs seeded, what this run made, and what the summary notes of it."""

    seeded: seed.SeedState
    accounts: list[seed.Account] = field(default_factory=list)
    """The accounts made on this run, with their passwords (shown once)."""
    notes: list[str] = field(default_factory=list)

    @classmethod
    async def open(cls, layout: Layout) -> CityState:
        """The folder's state; on the first run, the accounts made (in a process of their
        own, :mod:`.seeding`) and recorded."""
        layout.stores.mkdir(parents=True, exist_ok=True)
        state = cls(seed.SeedState.load(layout.seed_file))
        if state.seeded.first_run:
            state.accounts = await seeding.make_accounts(layout.stores)
            state.seeded.accounts = [account.username for account in state.accounts]
            state.seeded.save()
        else:
            state.notes.append(
                f"resumed {layout.root}: its data, NATS credentials and accounts are kept"
            )
        return state

    async def seed_city(
        self, endpoints: Endpoints, sites: Sequence[Site], air_metrics: Sequence[str]
    ) -> None:
        """The first run's alert rules and site records, as the administrator; nothing when
        an earlier run made them, a note when it cannot."""
        if self.seeded.city:
            return
        admin = next((a for a in self.accounts if a.username == seed.ADMIN.username), None)
        password = (
            admin.password
            if admin and admin.password
            else os.environ.get(seed.ADMIN.password_env, "")
        )
        if not password:
            self.notes.append(
                "alert rules and sites not seeded: the administrator's password is not known "
                f"to this run (set {seed.ADMIN.password_env})"
            )
            return
        try:
            done = await seeding.seed_rules_and_sites(
                password,
                identity=endpoints.address("identity"),
                alerts=endpoints.address("alerts"),
                records=endpoints.address("records"),
                sites=sites,
                air_metrics=air_metrics,
            )
        except seeding.SeedError as exc:
            # The city runs without them; the next run tries again.
            self.notes.append(f"alert rules and sites not seeded: {exc}")
            return
        self.notes += done
        self.seeded.city = True
        self.seeded.notes = done
        self.seeded.save()
