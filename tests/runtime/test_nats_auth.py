"""The generated authorization on a real nats-server: what each principal can and cannot do.

One server per test loads the authorization written by ``write_authorization`` (bcrypt cost
4 keeps connecting fast); the admin provisions the streams, then each test connects as the
principal it is about, with the credentials file written for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import nats.errors
import pytest
from nats.aio.msg import Msg
from nats.js.errors import NotFoundError
from pydantic import SecretStr
from support import eventually

from smartcity.agents.buffer import DiskBuffer
from smartcity.agents.profile import parse_profile
from smartcity.agents.publisher import TelemetryPublisher
from smartcity.agents.reading import Reading
from smartcity.runtime.bus import (
    ALERTS_STREAM,
    DEADLETTER_STREAM,
    IDENTITY_STREAM,
    RECORDS_STREAM,
    TELEMETRY_STREAM,
    Bus,
    BusError,
    BusPermissionError,
    StreamOutcome,
)
from smartcity.runtime.config import ConsumerSettings, NatsSettings, StreamsSettings
from smartcity.runtime.consumer import JetStreamConsumer, Rejected
from smartcity.runtime.nats_auth.plan import AgentPlan, DeviceRef, platform_principals
from smartcity.runtime.nats_auth.render import WrittenAuthorization, write_authorization
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.streams import provision_streams

A1_METER = DeviceRef("electricity", "hoa-khanh-110kv", "bay-1-meter")
A1_PUMP = DeviceRef("water_supply", "hoa-khanh-110kv", "pump-2")
A2_STATION = DeviceRef("water_supply", "cau-do", "station-1")
AGENTS = [AgentPlan("a1", (A1_METER, A1_PUMP)), AgentPlan("a2", (A2_STATION,))]


def telemetry(ref: DeviceRef) -> str:
    return f"city.telemetry.{ref.field}.{ref.site}.{ref.device}"


@dataclass
class City:
    server: EmbeddedNats
    written: WrittenAuthorization
    admin: Bus
    opened: list[Bus]

    def settings(self, user: str) -> NatsSettings:
        return self.server.client_settings().model_copy(
            update={"authorization_file": None, "credentials_file": self.written.credentials[user]}
        )

    async def connect(self, user: str) -> Bus:
        bus = await Bus.connect(self.settings(user), name=f"test-{user}")
        self.opened.append(bus)
        return bus

    async def messages(self, stream: str) -> int:
        return (await self.admin.js.stream_info(stream)).state.messages


@pytest.fixture
async def city(tmp_path: Path) -> AsyncIterator[City]:
    async with running_city(tmp_path, AGENTS) as town:
        yield town


@asynccontextmanager
async def running_city(tmp_path: Path, agents: list[AgentPlan]) -> AsyncIterator[City]:
    written = write_authorization(tmp_path / "auth", platform_principals(agents), rounds=4)
    settings = NatsSettings(
        data_dir=tmp_path / "nats",
        port=0,
        connect_timeout_seconds=5,
        reconnect_wait_seconds=0.1,
        authorization_file=written.authorization,
    )
    async with EmbeddedNats(settings) as server:
        opened: list[Bus] = []
        town = City(server, written, None, opened)  # type: ignore[arg-type]
        town.admin = await town.connect("admin")
        ensured = await provision_streams(town.admin, StreamsSettings())
        assert set(ensured.outcomes.values()) == {StreamOutcome.CREATED}
        try:
            yield town
        finally:
            for bus in reversed(opened):
                await bus.close()


async def refused_api(bus: Bus, call: Callable[..., object], subject: str) -> None:
    """``call`` (a JetStream API request) gets no answer, and the server said why."""
    with pytest.raises(nats.errors.TimeoutError):
        await call()  # type: ignore[misc]
    assert bus.refusals.take("publish", subject) is not None


# -- agents ------------------------------------------------------------------------------------


async def test_an_agent_publishes_its_devices_telemetry_with_acknowledgement(city):
    agent = await city.connect("agent-a1")
    for ref in (A1_METER, A1_PUMP):
        ack = await agent.jetstream_publish(telemetry(ref), b"batch", msg_id=f"{ref.device}/1")
        assert ack.stream == TELEMETRY_STREAM
    # The agent's uplink pipelines its batches (publish_async): acknowledged the same way.
    pending = await agent.js.publish_async(telemetry(A1_PUMP), b"pipelined")
    assert (await asyncio.wait_for(pending, 5)).stream == TELEMETRY_STREAM
    assert await city.messages(TELEMETRY_STREAM) == 3
    # It may look up whether the streams it publishes into exist, and nothing else.
    assert (await agent.js.stream_info(TELEMETRY_STREAM)).config.name == TELEMETRY_STREAM
    js = agent.nc.jetstream(timeout=1)
    await refused_api(
        agent, lambda: js.stream_info(RECORDS_STREAM), f"$JS.API.STREAM.INFO.{RECORDS_STREAM}"
    )


def profile(ref: DeviceRef) -> object:
    return parse_profile(
        {
            "site": ref.site,
            "field": ref.field,
            "device": ref.device,
            "protocol": "modbus",
            "endpoint": "tcp://127.0.0.1:1502",
            "points": [{"name": "ph", "unit": "pH", "address": 0}],
        }
    )


async def test_the_agents_uplink_sends_its_own_and_keeps_what_it_may_not_send(city, tmp_path):
    """The real uplink under the agent's user: its device's batches are acknowledged; a
    device it was not planned for is refused by the server and stays in the disk buffer."""
    agent = await city.connect("agent-a2")
    buffer = DiskBuffer(tmp_path / "buffer.db")
    publisher = TelemetryPublisher(buffer, agent_id="a2", ack_timeout=0.5)
    publisher.submit(
        profile(A2_STATION), [Reading.good("ph", 7.0 + i / 10, "pH") for i in range(5)]
    )
    publisher.submit(profile(A1_METER), [Reading.good("ph", 7.5, "pH")])
    uplink = asyncio.create_task(publisher.run(agent))
    try:
        await eventually(lambda: publisher.stats.readings_sent == 5, what="its own readings")
        await eventually(lambda: publisher.stats.send_failures > 0, what="the refused batch")
    finally:
        uplink.cancel()
        await asyncio.gather(uplink, return_exceptions=True)
    assert buffer.stats().batches == 1  # kept for when its permissions are put right
    assert await city.messages(TELEMETRY_STREAM) == 1
    buffer.close()


@pytest.mark.parametrize(
    "subject",
    [
        telemetry(A2_STATION),  # another agent's site
        "city.telemetry.electricity.cau-do.bay-1-meter",  # its device name, another site
        "city.telemetry.electricity.hoa-khanh-110kv.bay-9",  # its site, not its device
        "city.alerts.electricity.critical",
        "city.records.health_record.created",
        "city.identity.revoked",
        "city.deadletter.telemetry",
    ],
)
async def test_an_agent_cannot_publish_beyond_its_devices(city, subject):
    agent = await city.connect("agent-a1")
    with pytest.raises(BusPermissionError) as refused:
        await agent.jetstream_publish(subject, b"forged", timeout=1)
    assert str(refused.value) == (
        f"NATS user 'agent-a1' may not publish to {subject!r}: the server refused it "
        "(permissions violation); permissions come from `smartcity identity nats-config`"
    )
    # Core NATS too: the server drops it. A publish the agent may make, acknowledged
    # afterwards on the same connection, proves the forged one was processed (and dropped).
    await agent.publish(subject, b"forged again")
    await agent.jetstream_publish(telemetry(A1_METER), b"real")
    for stream in (TELEMETRY_STREAM, ALERTS_STREAM, RECORDS_STREAM, DEADLETTER_STREAM):
        expected = 1 if stream == TELEMETRY_STREAM else 0
        assert await city.messages(stream) == expected, stream


@pytest.mark.parametrize(
    "subject",
    [
        "city.records.>",
        "city.telemetry.>",
        "city.identity.>",
        "city.commands.cau-do.station-1",  # another agent's device
        "_INBOX.>",
        "_INBOX.monitoring.>",  # a service's replies
        ">",
    ],
)
async def test_an_agent_cannot_subscribe_beyond_its_commands_and_inbox(city, subject):
    agent = await city.connect("agent-a1")
    with pytest.raises(BusPermissionError, match="may not subscribe to") as refused:
        await agent.subscribe(subject)
    assert repr(subject) in str(refused.value)
    assert "'agent-a1'" in str(refused.value)


async def test_an_agent_cannot_create_update_or_delete_streams(city):
    agent = await city.connect("agent-a1")
    js = agent.nc.jetstream(timeout=1)
    await refused_api(
        agent,
        lambda: js.add_stream(name="GRAB", subjects=["city.records.>"]),
        "$JS.API.STREAM.CREATE.GRAB",
    )
    await refused_api(
        agent,
        lambda: js.delete_stream(TELEMETRY_STREAM),
        f"$JS.API.STREAM.DELETE.{TELEMETRY_STREAM}",
    )
    await refused_api(
        agent,
        lambda: js.purge_stream(TELEMETRY_STREAM),
        f"$JS.API.STREAM.PURGE.{TELEMETRY_STREAM}",
    )
    with pytest.raises(BusError, match="permission denied"):
        await provision_streams(agent, StreamsSettings(telemetry={"max_msgs": 5}))
    info = await city.admin.js.stream_info(TELEMETRY_STREAM)
    assert info.config.max_msgs == -1
    with pytest.raises(NotFoundError):
        await city.admin.js.stream_info("GRAB")


async def test_an_agent_serves_its_commands_and_may_answer_them(city):
    agent = await city.connect("agent-a1")
    operator = await city.connect("admin")
    subject = f"city.commands.{A1_METER.site}.{A1_METER.device}"

    async def execute(msg: Msg) -> None:
        await agent.reply(msg, b"accepted:" + msg.data)

    await agent.subscribe(subject, execute, queue="smartcity-agent.a1")
    reply = await operator.request(subject, b"setpoint", timeout=5)
    assert reply.data == b"accepted:setpoint"
    # The reply went to the requester's own inbox, which only the requester may read.
    assert reply.subject.startswith("_INBOX.admin.")
    await agent.publish(f"city.agents.{A1_METER.site}.a1", b"heartbeat")
    await agent.jetstream_publish(f"city.audit.commands.{A1_METER.site}.{A1_METER.device}", b"a")


async def test_each_principal_reads_replies_only_under_its_own_inbox(city):
    monitoring = await city.connect("monitoring")
    assert monitoring.nc._inbox_prefix == bytearray(b"_INBOX.monitoring")
    for other in ("_INBOX.agent-a1.>", "_INBOX.admin.>", "_INBOX.>"):
        with pytest.raises(BusPermissionError):
            await monitoring.subscribe(other)


async def test_odd_names_reach_the_server_exactly_as_planned(tmp_path):
    """Quotes, backslashes, ``$`` and Vietnamese letters are all legal in a subject token;
    the configuration's quoting must not change what the server allows."""
    odd = DeviceRef("water_supply", 'Đà-Nẵng"\\$HOME', "trạm#1")
    async with running_city(tmp_path, [AgentPlan("odd", (odd,))]) as town:
        agent = await town.connect("agent-odd")
        assert (await agent.jetstream_publish(telemetry(odd), b"x")).stream == TELEMETRY_STREAM
        for near in ("Đà-Nẵng", 'Đà-Nẵng"', "Đà-Nẵng\\"):
            subject = f"city.telemetry.water_supply.{near}.trạm#1"
            with pytest.raises(BusPermissionError):
                await agent.jetstream_publish(subject, b"x", timeout=1)
        assert await town.messages(TELEMETRY_STREAM) == 1


# -- services ----------------------------------------------------------------------------------


class Recorder:
    """A consumer handler that keeps what it committed and rejects ``bad`` payloads."""

    def __init__(self) -> None:
        self.committed: list[bytes] = []

    def decode(self, msg: Msg) -> bytes:
        if msg.data.startswith(b"bad"):
            raise Rejected("not a TelemetryBatch")
        return msg.data

    async def commit(self, items: Sequence[bytes]) -> None:
        self.committed.extend(items)

    def is_transient(self, error: Exception) -> bool:
        return False


async def test_monitoring_consumes_telemetry_as_its_durable_and_dead_letters(city):
    agent = await city.connect("agent-a1")
    await agent.jetstream_publish(telemetry(A1_METER), b"good")
    await agent.jetstream_publish(telemetry(A1_PUMP), b"bad payload")
    monitoring = await city.connect("monitoring")
    recorder = Recorder()
    consumer = JetStreamConsumer(
        monitoring,
        stream=TELEMETRY_STREAM,
        subject="city.telemetry.>",
        settings=ConsumerSettings(durable="monitoring", fetch_timeout_seconds=0.2),
        handler=recorder,
    )
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: recorder.committed == [b"good"], what="the good batch")
        await eventually(
            lambda: consumer.stats.deadlettered == 1, what="the bad batch dead-lettered"
        )
        assert await consumer.acked_through() == 2
        assert consumer.problem is None
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    dead = await city.admin.js.get_last_msg(DEADLETTER_STREAM, "city.deadletter.telemetry")
    assert dead.data == b"bad payload"
    assert dead.headers["Smartcity-Deadletter-Reason"] == "not a TelemetryBatch"
    # Its own live fan-out subjects, and nobody else's.
    await monitoring.subscribe("city.monitoring.live.>")
    await monitoring.publish("city.monitoring.watch", b"{}")
    with pytest.raises(BusPermissionError):
        await monitoring.jetstream_publish("city.alerts.electricity.critical", b"x", timeout=1)


async def test_a_service_cannot_take_over_another_services_durable(city):
    monitoring = await city.connect("monitoring")
    consumer = JetStreamConsumer(
        monitoring,
        stream=TELEMETRY_STREAM,
        subject="city.telemetry.>",
        settings=ConsumerSettings(durable="alerts", retry_initial_seconds=0.05),
        handler=Recorder(),
    )
    monitoring.js._timeout = 1
    task = asyncio.create_task(consumer.run())
    try:
        await eventually(lambda: consumer.problem is not None, what="the refusal")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert "cannot bind consumer 'alerts'" in consumer.problem
    names = [info.name async for info in _consumers(city.admin, TELEMETRY_STREAM)]
    assert "alerts" not in names


async def _consumers(bus: Bus, stream: str) -> AsyncIterator:
    for info in await bus.js.consumers_info(stream):
        yield info


async def test_every_service_follows_the_identity_stream(city):
    identity = await city.connect("identity")
    await identity.jetstream_publish("city.identity.keys", b"jwks-1")
    for name in ("records", "monitoring", "alerts", "console"):
        service = await city.connect(name)
        last = await service.js.get_last_msg(IDENTITY_STREAM, "city.identity.keys")
        assert last.data == b"jwks-1", name
        followed = await service.js.subscribe(
            "city.identity.>", stream=IDENTITY_STREAM, ordered_consumer=True
        )
        first = await followed.next_msg(timeout=5)
        assert first.data == b"jwks-1", name
        await followed.unsubscribe()
        with pytest.raises(BusPermissionError):
            await service.jetstream_publish("city.identity.revoked", b"forged", timeout=1)
    assert await city.messages(IDENTITY_STREAM) == 1


async def test_services_start_on_provisioned_streams_without_admin_rights(city):
    """``run_service`` ensures the streams at start: with them in place, a look-up suffices."""
    for name in ("identity", "records", "monitoring", "alerts", "console"):
        service = await city.connect(name)
        ensured = await service.ensure_streams(StreamsSettings())
        assert set(ensured.outcomes.values()) == {StreamOutcome.UNCHANGED}, name


async def test_the_admin_provisions_and_may_do_everything(city):
    ensured = await provision_streams(city.admin, StreamsSettings(telemetry={"max_msgs": 1000}))
    assert ensured.outcomes[TELEMETRY_STREAM] is StreamOutcome.UPDATED
    everything = await city.admin.subscribe(">")
    await everything.unsubscribe()
    await city.admin.jetstream_publish("city.records.health_record.created", b"r")


# -- logging in --------------------------------------------------------------------------------


async def test_a_wrong_password_is_refused_at_once_in_words(city):
    settings = city.settings("agent-a1").model_copy(
        update={"credentials_file": None, "user": "agent-a1", "password": SecretStr("guess")}
    )
    started = time.monotonic()
    with pytest.raises(BusError) as refused:
        await Bus.connect(settings, name="intruder")
    assert time.monotonic() - started < settings.connect_timeout_seconds
    assert str(refused.value) == (
        f"NATS at {city.server.url} refused user 'agent-a1' (authorization violation): the "
        "password is wrong or the server's authorization does not list this user; regenerate "
        "it with `smartcity identity nats-config` and reload the server"
    )


async def test_no_credentials_is_refused_with_what_to_set(city):
    settings = city.settings("admin").model_copy(update={"credentials_file": None})
    with pytest.raises(BusError, match=r"requires a user .*\(SMARTCITY_NATS__CREDENTIALS_FILE\)"):
        await Bus.connect(settings, name="anonymous")


async def test_an_unknown_user_is_refused(city):
    settings = city.settings("admin").model_copy(
        update={"credentials_file": None, "user": "agent-a3", "password": SecretStr("x")}
    )
    with pytest.raises(BusError, match="refused user 'agent-a3'"):
        await Bus.connect(settings, name="stranger")


async def test_a_damaged_credentials_file_is_a_bus_error_naming_it(city, tmp_path):
    damaged = tmp_path / "agent.yaml"
    damaged.write_text("user: agent-a1\n", encoding="utf-8")
    settings = city.settings("admin").model_copy(update={"credentials_file": damaged})
    with pytest.raises(BusError, match=f"{damaged}: `password` must be a non-empty string"):
        await Bus.connect(settings, name="damaged")


async def test_a_service_that_may_not_change_the_streams_starts_with_them_as_they_are(
    city, tmp_path
):
    """Monitoring, logged in as its own user, is configured with other stream limits than the
    admin provisioned: it may not change them, says so, and serves anyway."""
    from smartcity.runtime.config import Settings
    from smartcity.runtime.service import Running, run_service
    from smartcity.services.monitoring.app import MONITORING

    nats = city.settings("monitoring").model_copy(
        update={"streams": StreamsSettings(telemetry={"max_msgs": 7})}
    )
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    service = asyncio.create_task(
        run_service(
            MONITORING, Settings(nats=nats, data_dir=tmp_path), stop, on_ready=ready.set_result
        )
    )
    try:
        running = await asyncio.wait_for(ready, 30)
        assert running.name == "monitoring"
        info = await city.admin.js.stream_info(TELEMETRY_STREAM)
        assert info.config.max_msgs != 7
    finally:
        stop.set()
        await asyncio.wait_for(service, 30)
