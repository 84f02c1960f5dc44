"""The agent process: every device's driver, the disk buffer, the uplink, the heartbeat and
the write commands.

Reading never waits for the network. Drivers start at once and write into the disk buffer
whether or not NATS is reachable; the connection to NATS is made (and re-made) beside them,
and the uplink drains the buffer whenever it is up. Stopping the agent stops the drivers
first, gives the uplink ``drain_timeout`` to empty the buffer, and keeps on disk whatever is
left for the next start.

Write commands are served only when the agent can check who sends them: with ``auth`` keys
configured (identity's key set, or a public key handed over) it answers
``city.commands.<site>.<device>``; without keys it does not subscribe at all. ``ready`` is set
once the agent is connected and its command subscriptions are known to the server.

One buffer, one process. The default id is the host name and a short hash of the devices the
agent serves, so two agents started from one folder with different profiles get different
ids, buffers and heartbeat subjects; the buffer's OS lock refuses a second agent on the same
buffer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
import socket
import sqlite3
from collections.abc import Sequence
from pathlib import Path

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.buffer_state import holder
from smartcity.agents.commands import CommandService
from smartcity.agents.device_loop import serve_device
from smartcity.agents.driver import DeviceDriver, driver_for
from smartcity.agents.health import publish_heartbeats, register_metrics
from smartcity.agents.profile import ModbusDevice, OpcuaDevice
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.resilience import Backoff
from smartcity.agents.workers import siblings
from smartcity.runtime.auth import Authenticator
from smartcity.runtime.bus import Bus, BusError, BusPermissionError
from smartcity.runtime.config import Settings
from smartcity.runtime.errors import FailedPrecondition
from smartcity.runtime.tokens import AuthMode, KeySetError, TokenVerifier
from smartcity.runtime.trust import IdentityFeed, LocalAuthenticator

log = logging.getLogger(__name__)

Profile = ModbusDevice | OpcuaDevice


class AgentError(Exception):
    """The agent cannot run as configured; the message says what to change."""


def default_agent_id(profiles: Sequence[Profile]) -> str:
    """The host name and a short hash of the devices served, made a valid subject token:
    unique per agent on a host, and stable while its set of devices stays the same."""
    host = re.sub(r"[^a-z0-9_-]+", "-", socket.gethostname().lower()).strip("-_")[:54]
    devices = "\n".join(sorted(f"{p.site}/{p.device}" for p in profiles))
    digest = hashlib.sha256(devices.encode()).hexdigest()[:8]
    return f"{host or 'agent'}-{digest}"


def buffer_path(settings: Settings, agent_id: str) -> Path:
    """Where the agent ``agent_id`` keeps its disk buffer."""
    folder = settings.agent.buffer_dir or (Path(settings.data_dir) / "agent")
    return Path(folder) / f"{agent_id}.buffer.db"


def waiting_elsewhere(path: Path, agent_id: str = "") -> dict[Path, int]:
    """Other buffers beside ``path`` that hold batches and that no running agent owns:
    readings of an agent that ran under another id (its devices changed, say). The buffers
    of the other workers of the same agent (``--workers``) are theirs, even while they are
    still starting."""
    pool = siblings(agent_id)
    found: dict[Path, int] = {}
    for other in sorted(path.parent.glob("*.buffer.db")):
        if other == path or (pool is not None and pool.match(other.name)):
            continue
        if holder(other) is not None:
            continue
        try:
            with contextlib.closing(sqlite3.connect(f"file:{other}?mode=ro", uri=True)) as db:
                (count,) = db.execute("SELECT count(*) FROM batches").fetchone()
        except sqlite3.Error:
            continue
        if count:
            found[other] = count
    return found


def _retry_delays(within: float, step: float = 0.2) -> list[float]:
    """The pauses between tries of something retried for ``within`` seconds (one try at
    least)."""
    return [step] * max(0, int(within / step)) + [0.0]


class Agent:
    """One agent process serving the devices of ``profiles``."""

    def __init__(
        self,
        profiles: Sequence[Profile],
        settings: Settings,
        *,
        nats_url: str | None = None,
    ) -> None:
        if not profiles:
            raise AgentError("an agent needs at least one device profile")
        seen: set[tuple[str, str]] = set()
        for profile in profiles:
            key = (profile.site, profile.device)
            if key in seen:
                raise AgentError(
                    f"device {profile.device!r} of site {profile.site!r} is in two profiles"
                )
            seen.add(key)
        self.url = nats_url or settings.nats.url
        if not self.url:
            raise AgentError(
                "an agent publishes to an existing NATS: give --nats URL or set nats.url "
                "(SMARTCITY_NATS__URL)"
            )
        self.settings = settings
        self.profiles = list(profiles)
        self.agent_id = settings.agent.id or default_agent_id(self.profiles)
        self.buffer_path = buffer_path(settings, self.agent_id)
        self.buffer: DiskBuffer | None = None
        self.publisher: TelemetryPublisher | None = None
        self.drivers: list[DeviceDriver] = []
        self.bus: Bus | None = None
        self.connected = asyncio.Event()
        self.ready = asyncio.Event()
        """Connected, and every command subscription is known to the server."""
        self.commands: list[CommandService] = []
        self.authenticator: Authenticator | None = None
        """Who sends write commands: key files read here, or identity's key set and
        revocations from the IDENTITY stream once connected (``auth.mode``)."""
        if settings.auth.resolved_mode is AuthMode.KEYS:
            try:
                self.authenticator = LocalAuthenticator(TokenVerifier.from_settings(settings.auth))
            except KeySetError as exc:
                raise AgentError(f"auth: {exc}") from None

    async def run(self, stop: asyncio.Event) -> None:
        """Run until ``stop`` is set, then shut down in order."""
        options = self.settings.agent
        try:
            self.buffer = DiskBuffer(
                self.buffer_path,
                max_bytes=options.buffer_max_bytes,
                synchronous=options.buffer_synchronous,
            )
        except FailedPrecondition as exc:
            raise AgentError(
                f"{exc}: two agents cannot share a buffer. Give this agent its own id with "
                "--id ID (agent.id), or its own folder with agent.buffer_dir"
            ) from None
        for other, count in waiting_elsewhere(self.buffer_path, self.agent_id).items():
            log.warning(
                "agent %s: %s holds %d unsent batch(es) of an agent that is not running; "
                "start it (--id %s) to send them",
                self.agent_id,
                other,
                count,
                other.name.removesuffix(".buffer.db"),
            )
        pending = self.buffer.stats()
        if pending.batches:
            log.info(
                "agent %s: %d batch(es), %d bytes from an earlier run wait in %s; they are sent "
                "first",
                self.agent_id,
                pending.batches,
                pending.bytes,
                self.buffer_path,
            )
        self.publisher = TelemetryPublisher(
            self.buffer,
            agent_id=self.agent_id,
            max_batch=options.max_batch_readings,
            window=options.publish_window,
            ack_timeout=options.ack_timeout_seconds,
            staging_max_readings=options.staging_max_readings,
        )
        self.drivers = [driver_for(profile) for profile in self.profiles]
        register_metrics(drivers=self.drivers, buffer=self.buffer, publisher=self.publisher)
        devices = [
            asyncio.create_task(
                serve_device(driver, self.publisher.sink_for(driver.profile)),
                name=f"device {driver.profile.site}/{driver.profile.device}",
            )
            for driver in self.drivers
        ]
        writer = asyncio.create_task(self.publisher.run_writer(), name="buffer writer")
        uplink = asyncio.create_task(self._uplink(self.buffer, self.publisher), name="uplink")
        log.info(
            "agent %s: reading %d device(s), publishing to %s, buffer %s",
            self.agent_id,
            len(self.drivers),
            self.url,
            self.buffer_path,
        )
        try:
            await stop.wait()
        finally:
            await self._shutdown(devices, writer, uplink, self.buffer, self.publisher)

    async def _uplink(self, buffer: DiskBuffer, publisher: TelemetryPublisher) -> None:
        """Connect (again and again, if need be), then run the uplink and the heartbeat."""
        backoff = Backoff(initial=0.5, maximum=10.0)
        nats = self.settings.nats.model_copy(update={"url": self.url})
        while self.bus is None:
            try:
                self.bus = await Bus.connect(nats, name=f"agent-{self.agent_id}")
            except BusError as exc:
                delay = backoff.next_delay()
                log.warning("agent %s: %s; retrying in %.1f s", self.agent_id, exc, delay)
                await asyncio.sleep(delay)
        self.connected.set()
        await self._serve_commands(self.bus)
        self.ready.set()
        await asyncio.gather(
            publisher.run(self.bus),
            publish_heartbeats(
                self.bus,
                agent_id=self.agent_id,
                drivers=self.drivers,
                buffer=buffer,
                publisher=publisher,
                interval=self.settings.agent.heartbeat_interval_seconds,
            ),
        )

    async def _serve_commands(self, bus: Bus) -> None:
        if self.settings.auth.resolved_mode is AuthMode.IDENTITY and self.authenticator is None:
            feed = IdentityFeed(bus, self.settings.auth)
            try:
                await feed.start()
            except Exception as exc:  # e.g. no right to read IDENTITY: commands stay off
                log.warning(
                    "agent %s: write commands are off: cannot follow identity's keys (%s)",
                    self.agent_id,
                    exc,
                )
                return
            self.authenticator = feed
        if self.authenticator is None:
            log.info(
                "agent %s: write commands are off (auth.mode off: no key to verify a sender)",
                self.agent_id,
            )
            return
        by_site: dict[str, dict[str, tuple[Profile, DeviceDriver]]] = {}
        for driver in self.drivers:
            profile = driver.profile
            by_site.setdefault(profile.site, {})[profile.device] = (profile, driver)
        for site, devices in by_site.items():
            service = CommandService(
                bus,
                site=site,
                agent_id=self.agent_id,
                devices=devices,
                authenticator=self.authenticator,
            )
            try:
                await service.start()
            except BusPermissionError as exc:
                # NATS authorization generated for other devices: telemetry still flows.
                log.error(
                    "agent %s: write commands for site %s are off: %s", self.agent_id, site, exc
                )
                continue
            self.commands.append(service)

    async def _shutdown(
        self,
        devices: list[asyncio.Task[None]],
        writer: asyncio.Task[None],
        uplink: asyncio.Task[None],
        buffer: DiskBuffer,
        publisher: TelemetryPublisher,
    ) -> None:
        for service in self.commands:  # a write in progress still has its driver
            with contextlib.suppress(Exception):
                await service.stop()
        for task in devices:
            task.cancel()
        await asyncio.gather(*devices, return_exceptions=True)
        for driver in self.drivers:
            with contextlib.suppress(Exception):
                await driver.close()
        # What the devices handed over last goes to disk before anything is sent.
        timeout = self.settings.agent.drain_timeout_seconds
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for delay in _retry_delays(deadline - loop.time()):
            if await publisher.flush():
                break
            await asyncio.sleep(delay)
        if publisher.staged_readings:
            log.error(
                "agent %s: stopping with %d reading(s) the disk buffer %s could not take: %s",
                self.agent_id,
                publisher.staged_readings,
                self.buffer_path,
                publisher.health.last_error,
            )
        for task in (writer, uplink):
            task.cancel()
        await asyncio.gather(writer, uplink, return_exceptions=True)
        if self.bus is not None:
            await publisher.drain(self.bus, max(0.0, deadline - loop.time()))
            await self.bus.close()
        left = buffer.stats()
        if left.batches:
            log.warning(
                "agent %s: stopping with %d batch(es) not yet acknowledged; they stay in %s "
                "for the next start",
                self.agent_id,
                left.batches,
                self.buffer_path,
            )
        buffer.close()
        log.info("agent %s stopped", self.agent_id)
