"""A small city for the console's end-to-end tests: a real nats-server, the identity,
monitoring, records and alerts processes as ``smartcity serve`` runs them (``run_service``),
the last three verifying identity's tokens from the IDENTITY stream; people with roles, an
alert rule on turbidity, and an agent-less publisher of telemetry batches onto the TELEMETRY
stream."""

from __future__ import annotations

import contextlib
import gc
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf.timestamp_pb2 import Timestamp
from identity_support import PASSWORD, add_staff, clock_now, identity_settings, opened
from identity_support import running_service as running

from smartcity.alerts.v1 import alerts_pb2, alerts_pb2_grpc
from smartcity.common.v1 import common_pb2
from smartcity.identity.v1 import identity_pb2, identity_pb2_grpc
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import (
    AlertsSettings,
    ConsumerSettings,
    MonitoringSettings,
    NatsSettings,
    RecordsSettings,
    Settings,
    StreamsSettings,
)
from smartcity.runtime.grpc_client import channel, wait_ready
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.subjects import telemetry_subject
from smartcity.runtime.tokens import AuthMode, AuthSettings
from smartcity.services.alerts.app import ALERTS
from smartcity.services.console.settings import Targets
from smartcity.services.identity.app import IDENTITY
from smartcity.services.monitoring.app import MONITORING
from smartcity.services.records.app import RECORDS
from smartcity.telemetry.v1 import telemetry_pb2

SITE, DEVICE, FIELD = "cau-do", "tb-1", "water_supply"
USERS = {
    "op.an": ("operator:water_supply", "viewer:*"),
    "view.binh": ("viewer:*",),
    "eng.le": ("engineer:water_supply", "viewer:*"),
}

__all__ = ["DEVICE", "FIELD", "PASSWORD", "SITE", "City", "running_city"]


@dataclass
class City:
    targets: Targets
    bus: Bus
    sequence: int = 0

    async def publish(self, value: float) -> None:
        """One turbidity reading from the device, as an agent would publish it."""
        self.sequence += 1
        stamp = Timestamp()
        stamp.FromNanoseconds(time.time_ns())
        batch = telemetry_pb2.TelemetryBatch(
            field=FIELD,
            site=SITE,
            device=DEVICE,
            agent_id="edge-1",
            batch_id=f"{SITE}/{DEVICE}/1/{self.sequence}",
            first_sequence=self.sequence,
            last_sequence=self.sequence,
            readings=[
                telemetry_pb2.Reading(
                    metric="turbidity",
                    value=value,
                    unit="NTU",
                    quality=common_pb2.QUALITY_GOOD,
                    source_time=stamp,
                    sequence=self.sequence,
                )
            ],
        )
        await self.bus.jetstream_publish(
            telemetry_subject(FIELD, SITE, DEVICE), batch.SerializeToString(), msg_id=batch.batch_id
        )

    async def token(self, username: str) -> str:
        async with channel(self.targets.identity) as connection:
            stub = identity_pb2_grpc.IdentityServiceStub(connection)
            reply = await stub.Login(
                identity_pb2.LoginRequest(username=username, password=PASSWORD)
            )
            return reply.tokens.access_token


async def _turbidity_rule(city: City) -> None:
    rule = alerts_pb2.Rule(
        id="turbidity_high",
        display_name="Turbidity above 2 NTU",
        field=FIELD,
        selector=common_pb2.SeriesSelector(metric="turbidity"),
        severity=alerts_pb2.SEVERITY_WARNING,
        threshold=alerts_pb2.ThresholdCondition(
            comparison=alerts_pb2.COMPARISON_GREATER, threshold=2.0, hysteresis=0.5
        ),
        enabled=True,
    )
    token = await city.token("eng.le")
    async with channel(city.targets.alerts, token=token) as connection:
        await alerts_pb2_grpc.AlertsServiceStub(connection).CreateRule(
            alerts_pb2.CreateRuleRequest(rule=rule, request_id="console-rule")
        )


@contextlib.asynccontextmanager
async def running_city(folder: Path) -> AsyncIterator[City]:
    nats_settings = NatsSettings(data_dir=folder / "nats", port=0, reconnect_wait_seconds=0.1)
    with EmbeddedNats(nats_settings) as nats:
        nats_client = nats.client_settings()
        identity = Settings(
            nats=nats_client,
            data_dir=folder,
            identity=identity_settings(f"sqlite:///{folder / 'identity.db'}"),
        )
        async with opened(identity, clock_now()) as service:
            for username, roles in USERS.items():
                await add_staff(service, username, *roles)
        verified = AuthSettings(mode=AuthMode.IDENTITY)
        fast = ConsumerSettings(fetch_timeout_seconds=0.1)
        monitoring = Settings(
            nats=nats_client,
            data_dir=folder,
            auth=verified,
            monitoring=MonitoringSettings(ingest=fast.model_copy(update={"durable": "monitoring"})),
        )
        records = Settings(
            nats=nats_client, data_dir=folder, auth=verified, records=RecordsSettings()
        )
        alerts = Settings(
            nats=nats_client,
            data_dir=folder,
            auth=verified,
            alerts=AlertsSettings(
                tick_seconds=0.05,
                group_wait_seconds=0,
                plugin_rules=False,
                evaluation=fast.model_copy(update={"durable": "alerts"}),
            ),
        )
        bus = await Bus.connect(nats_client, name="console-test-agent")
        try:
            await bus.ensure_streams(StreamsSettings())
            async with (
                running(IDENTITY, identity) as id_running,
                running(MONITORING, monitoring) as mon_running,
                running(RECORDS, records) as rec_running,
                running(ALERTS, alerts) as al_running,
            ):
                targets = Targets(
                    id_running.grpc_address,
                    mon_running.grpc_address,
                    rec_running.grpc_address,
                    al_running.grpc_address,
                )
                for target in (targets.monitoring, targets.records, targets.alerts):
                    async with channel(target) as connection:
                        await wait_ready(connection, 30)  # the key set from identity arrived
                city = City(targets, bus)
                await _turbidity_rule(city)
                yield city
        finally:
            await bus.close()
            # free the stopped gRPC servers while their event loop still runs (see conftest)
            gc.collect()
