"""Faults on a schedule, so that the demo city's alerts fire and then resolve.

Each simulated site has one fault that its field's rules notice: a voltage sag at a
substation (the 22 kV busbar drops to 70..80 %, past the +-5 % band held for a minute), a
turbidity spike at a water station (about 8 NTU decaying back under the 2 NTU limit), a
pollution episode at the air station (PM2.5 of about 300 ug/m3). Every ``interval`` seconds
the next site in turn gets its fault, through the simulator's own protocol (Modbus registers,
an OPC-UA method call) from ``smartcity sim fault`` itself, so a drill from the command line
and the schedule do the same thing. The faults last long enough to pass the
rules' hold times and end by themselves.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from smartcity.up.plan import Layout, Site
from smartcity.up.steps import run_once

__all__ = ["FAULTS", "FaultError", "FaultTarget", "fault_targets", "inject", "run_schedule"]

FAULTS: dict[str, tuple[str, float]] = {
    "modbus": ("voltage_sag", 90.0),
    "opcua": ("turbidity_spike", 180.0),
    "air": ("pollution_episode", 180.0),
}
"""Per kind of simulator: the fault and how long it lasts (seconds)."""


@dataclass(frozen=True)
class FaultTarget:
    """Where a site's simulator takes faults, and the one the schedule sends it."""

    site: str
    endpoint: str
    fault: str
    seconds: float
    cert: Path | None = None
    key: Path | None = None
    """An OPC-UA station's sessions are signed and encrypted with the agent's pair."""

    def command(self) -> str:
        """The same fault from a shell."""
        line = f"smartcity sim fault {self.endpoint} {self.fault} --seconds {self.seconds:g}"
        if self.cert is not None and self.key is not None:
            line += f" --cert {self.cert} --key {self.key}"
        return line


def fault_targets(
    sites: Sequence[Site], layout: Layout, endpoints: dict[str, str]
) -> list[FaultTarget]:
    """The fault target of every site in ``endpoints`` (site id to simulator endpoint)."""
    targets = []
    for site in sites:
        endpoint = endpoints.get(site.id)
        if endpoint is None:
            continue
        fault, seconds = FAULTS[site.simulator]
        cert = key = None
        if site.simulator == "opcua":
            certs = layout.sim_dir(site.id) / "certs"
            cert, key = certs / "agent.der", certs / "agent.pem"
        targets.append(FaultTarget(site.id, endpoint, fault, seconds, cert, key))
    return targets


class FaultError(RuntimeError):
    """``smartcity sim fault`` did not inject the fault; the message is what it said."""


async def inject(
    target: FaultTarget,
    fault: str | None = None,
    seconds: float | None = None,
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> str:
    """Send ``fault`` (default: the target's own) to the simulator with ``smartcity sim
    fault``, in a process of its own; what it said.

    A process of its own, because a supervisor that injected faults itself would carry the
    OPC-UA client and its cryptography for the rest of its life, for a few seconds' work
    every few minutes. Raises :class:`FaultError`.
    """
    argv = [sys.executable, "-m", "smartcity.cli.sim", "fault", target.endpoint]
    argv += [
        fault or target.fault,
        "--seconds",
        f"{target.seconds if seconds is None else seconds:g}",
    ]
    if target.cert is not None and target.key is not None:
        argv += ["--cert", str(target.cert), "--key", str(target.key)]
    env = {**os.environ, "COLUMNS": "1000"}  # what it says on one line, as it is reported
    finished = await run_once(argv, env=env, timeout=timeout)
    if finished.status is None:
        raise FaultError(f"no answer within {timeout:g} s")
    if finished.status != 0:
        # Its one "error:" line; libraries may have warned before it.
        said = finished.err.decode("utf-8", errors="replace").rpartition("error:")[2]
        raise FaultError(" ".join(said.split()) or finished.describe())
    return " ".join(finished.out.decode("utf-8", errors="replace").split())


async def run_schedule(
    targets: Sequence[FaultTarget],
    interval: float,
    report: Callable[[str, bool], None],
    *,
    timeout: float = 30.0,  # noqa: ASYNC109
) -> None:
    """Every ``interval`` seconds, the next target's fault; ``report(line, ok)`` says what
    happened. Runs until cancelled; a simulator that does not take a fault is reported and
    the schedule goes on."""
    if not targets or interval <= 0:
        return
    turn = 0
    while True:
        await asyncio.sleep(interval)
        target = targets[turn % len(targets)]
        turn += 1
        try:
            said = await inject(target, timeout=timeout)
        except (FaultError, OSError) as exc:
            report(f"fault {target.fault} at {target.site} not injected: {exc}", False)
            continue
        report(f"fault at {target.site}: {said}", True)
