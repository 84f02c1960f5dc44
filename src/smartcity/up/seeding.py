"""The first run's seeding (:mod:`.seed`), each step in a short-lived process of its own.

Making the accounts needs identity's store and password hashing; the alert rules need the
alerts service's rule model and the field plugins' templates; creating rules and sites needs
the gRPC clients of identity, alerts and records. The supervisor needs none of it afterwards,
and what a Python process has loaded stays for its life: so ``smartcity up`` runs each step
as ``python -m smartcity.up.seeding STEP ...`` and keeps only what the step did, a JSON
document the step writes to its standard output (its logs go to standard error). The
administrator's password reaches the ``city`` step in its environment, never in its
arguments, which anyone on the machine can read.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from smartcity.runtime.errors import FailedPrecondition, InvalidArgument
from smartcity.up.plan import SITES, Site
from smartcity.up.seed import ADMIN, Account
from smartcity.up.steps import run_once

__all__ = ["SeedError", "make_accounts", "seed_rules_and_sites"]

_STEP_SECONDS = 120.0
"""A step that takes longer is stuck (the password hashing takes about a second)."""
_TAIL = 2000


class SeedError(RuntimeError):
    """A seeding step did not do its work; the message says why."""


async def make_accounts(stores: Path) -> list[Account]:
    """:func:`.seed.seed_accounts` in a process of its own: the accounts, with the passwords
    made for them on this run.

    Raises :class:`InvalidArgument` for settings the step refuses, :class:`FailedPrecondition`
    when it fails otherwise.
    """
    try:
        answer = await _step(["accounts", "--stores", str(stores)], os.environ)
    except SeedError as exc:
        raise FailedPrecondition(f"the accounts could not be made: {exc}") from None
    if answer.get("invalid"):
        raise InvalidArgument(str(answer["invalid"]))
    return [
        Account(**{**item, "roles": tuple(item["roles"])}) for item in answer.get("accounts", [])
    ]


async def seed_rules_and_sites(
    password: str,
    *,
    identity: str,
    alerts: str,
    records: str,
    sites: Sequence[Site],
    air_metrics: Sequence[str],
) -> list[str]:
    """The alert rules and site records of ``sites``, as the administrator, in a process of
    its own; what was done, a line each. Raises :class:`SeedError`."""
    argv = ["city", "--identity", identity, "--alerts", alerts, "--records", records]
    argv += [item for site in sites for item in ("--site", site.id)]
    argv += [item for metric in air_metrics for item in ("--air-metric", metric)]
    answer = await _step(argv, {**os.environ, ADMIN.password_env: password})
    if "error" in answer:
        raise SeedError(str(answer["error"]))
    return [str(note) for note in answer.get("notes", [])]


async def _step(argv: list[str], env: Mapping[str, str]) -> dict[str, Any]:
    """Run ``python -m smartcity.up.seeding ARGV``; the document it wrote."""
    command = [sys.executable, "-m", "smartcity.up.seeding", *argv]
    finished = await run_once(command, env=env, timeout=_STEP_SECONDS)
    if finished.status is None:
        raise SeedError(f"{argv[0]} took more than {_STEP_SECONDS:g} s")
    try:
        answer = json.loads(finished.out)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        tail = finished.err.decode("utf-8", errors="replace")[-_TAIL:].strip()
        raise SeedError(f"{finished.describe()}: {tail or 'no output'}")
    return answer


# -- the steps, in their own process -------------------------------------------------------------


async def _accounts(stores: Path) -> dict[str, Any]:
    from smartcity.up.seed import seed_accounts

    try:
        made = await seed_accounts(stores)
    except InvalidArgument as exc:
        return {"invalid": exc.message}
    return {"accounts": [dataclasses.asdict(account) for account in made]}


async def _city(arguments: argparse.Namespace) -> dict[str, Any]:
    import grpc.aio

    from smartcity.up.seed import city_rules, login, seed_city

    password = os.environ.get(ADMIN.password_env, "")
    by_id = {site.id: site for site in SITES}
    sites = [by_id[name] for name in arguments.site if name in by_id]
    try:
        token = await login(arguments.identity, ADMIN.username, password)
        notes = await seed_city(
            token,
            alerts=arguments.alerts,
            records=arguments.records,
            rules=city_rules(sites, arguments.air_metric),
            sites=sites,
        )
    except grpc.aio.AioRpcError as exc:
        return {"error": exc.details() or exc.code().name}
    except InvalidArgument as exc:
        return {"error": exc.message}
    return {"notes": notes}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m smartcity.up.seeding")
    steps = parser.add_subparsers(dest="step", required=True)
    accounts = steps.add_parser("accounts")
    accounts.add_argument("--stores", type=Path, required=True)
    city = steps.add_parser("city")
    for name in ("--identity", "--alerts", "--records"):
        city.add_argument(name, required=True)
    city.add_argument("--site", action="append", default=[])
    city.add_argument("--air-metric", action="append", default=[])
    arguments = parser.parse_args(argv)
    # The document alone on standard output: whatever else is printed goes to stderr.
    result = os.fdopen(os.dup(sys.stdout.fileno()), "w", encoding="utf-8")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    if arguments.step == "accounts":
        answer = asyncio.run(_accounts(arguments.stores))
    else:
        answer = asyncio.run(_city(arguments))
    with result:
        json.dump(answer, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
