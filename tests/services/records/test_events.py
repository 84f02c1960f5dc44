"""Record events from the running service (``run_service`` with a real nats-server and both
backends): one event on ``city.records.<type>.<event>`` for every committed change, none for
a refused one, each with its event id as ``Nats-Msg-Id``; an event published again after a
failure is stored once by the stream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from nats.aio.msg import Msg
from nats.js.api import ConsumerConfig, DeliverPolicy
from records_support import Tokens, facility, opened, records_service, ticket
from support import eventually

from smartcity.records.v1 import records_pb2, records_pb2_grpc
from smartcity.runtime.bus import RECORDS_STREAM, Bus
from smartcity.runtime.config import StreamsSettings, load_settings
from smartcity.runtime.grpc_client import channel
from smartcity.runtime.nats_server import EmbeddedNats
from smartcity.runtime.service import Running, run_service
from smartcity.services.records.app import RECORDS
from smartcity.services.records.events import OutboxPublisher
from smartcity.services.records.store import RecordStore


def struct(data: dict[str, object]) -> Struct:
    message = Struct()
    message.update(data)
    return message


@contextlib.asynccontextmanager
async def running(
    nats_server: EmbeddedNats, store_url: str, tmp_path: Path, tokens: Tokens
) -> AsyncIterator[Running]:
    keys = tmp_path / "jwks.json"
    keys.write_text(tokens.signer.jwks_json())
    settings = load_settings(
        None,
        nats={"url": nats_server.url, "embedded": False},
        grpc={"port": 0},
        records={"store_url": store_url},
        auth={"mode": "keys", "jwks_file": str(keys)},
        data_dir=str(tmp_path / "data"),
    )
    stop = asyncio.Event()
    ready: asyncio.Future[Running] = asyncio.get_running_loop().create_future()
    task = asyncio.create_task(run_service(RECORDS, settings, stop, on_ready=ready.set_result))
    try:
        done, _ = await asyncio.wait([ready, task], timeout=30, return_when=asyncio.FIRST_COMPLETED)
        assert ready in done, "the records service did not start"
        yield ready.result()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


async def events(bus: Bus, count: int) -> list[Msg]:
    """Every message the RECORDS stream holds, once ``count`` are there."""
    received: list[Msg] = []
    consumer = await bus.js.pull_subscribe(
        "city.records.>",
        stream=RECORDS_STREAM,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )

    async def fetched() -> bool:
        with contextlib.suppress(TimeoutError):
            received.extend(await consumer.fetch(100, timeout=0.2))
        return len(received) >= count

    try:
        await eventually(fetched, what=f"{count} record events")
        with contextlib.suppress(TimeoutError):
            received.extend(await consumer.fetch(100, timeout=0.5))  # and nothing more
    finally:
        await consumer.unsubscribe()
    return received


async def test_an_event_for_every_committed_change_and_none_for_a_refused_one(
    nats_server: EmbeddedNats, bus: Bus, store_url: str, tmp_path: Path, tokens: Tokens
) -> None:
    async with running(nats_server, store_url, tmp_path, tokens) as service:
        async with channel(service.grpc_address, token=tokens.officer("citizen_services")) as conn:
            stub = records_pb2_grpc.RecordsServiceStub(conn)
            created = (
                await stub.CreateRecord(
                    records_pb2.CreateRecordRequest(
                        type="feedback_ticket", data=struct(ticket("c-1"))
                    )
                )
            ).record
            refusals = [
                stub.CreateRecord(
                    records_pb2.CreateRecordRequest(
                        type="feedback_ticket", data=struct(ticket("c-1", status="closed"))
                    )
                ),
                stub.UpdateRecord(
                    records_pb2.UpdateRecordRequest(
                        id=created.id,
                        data=struct(ticket("c-1", status="resolved")),
                        expected_version=1,
                    )
                ),
            ]
            await stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=created.id,
                    data=struct(ticket("c-1", status="assigned")),
                    expected_version=1,
                    reason="to team 3",
                )
            )
            refusals.append(
                stub.UpdateRecord(
                    records_pb2.UpdateRecordRequest(
                        id=created.id,
                        data=struct(ticket("c-1", status="assigned")),
                        expected_version=1,
                    )
                )
            )
            for call in refusals:
                with pytest.raises(grpc.aio.AioRpcError):
                    await call
            await stub.DeleteRecord(
                records_pb2.DeleteRecordRequest(
                    id=created.id, expected_version=2, reason="duplicate"
                )
            )
        received = await events(bus, 3)
    assert [m.subject for m in received] == [
        "city.records.feedback_ticket.created",
        "city.records.feedback_ticket.updated",
        "city.records.feedback_ticket.deleted",
    ]
    decoded = [records_pb2.RecordEvent.FromString(m.data) for m in received]
    assert [(e.record_id, e.version, e.actor.id) for e in decoded] == [
        (created.id, v, "officer-1") for v in (1, 2, 3)
    ]
    assert [e.type for e in decoded] == [
        records_pb2.RecordEvent.TYPE_CREATED,
        records_pb2.RecordEvent.TYPE_UPDATED,
        records_pb2.RecordEvent.TYPE_DELETED,
    ]
    assert [e.reason for e in decoded][1:] == ["to team 3", "duplicate"]
    assert all(e.owner.id == "c-1" and e.field == "citizen_services" for e in decoded)
    assert [m.headers["Nats-Msg-Id"] for m in received] == [e.event_id for e in decoded]  # type: ignore[index]
    async with opened(store_url) as store:
        assert await store.pending_events(10) == []


class _ForgetfulStore:
    """A store that loses the removal of published events once, as a crash between the
    stream's acknowledgement and the outbox delete would."""

    def __init__(self, store: RecordStore) -> None:
        self._store = store
        self.failed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self._store, name)

    async def events_published(self, sequences: Sequence[int]) -> None:
        if not self.failed:
            self.failed = True
            raise ConnectionError("lost the connection before the delete")
        await self._store.events_published(sequences)


async def test_events_published_again_after_a_failure_are_stored_once(
    bus: Bus, store: RecordStore
) -> None:
    await bus.ensure_streams(StreamsSettings())
    service = records_service(store)
    for n in range(5):
        await service.create(None, "food_facility", facility(name=f"Stall {n}"), owner_id="o-1")
    forgetful = _ForgetfulStore(store)
    publisher = OutboxPublisher(bus, forgetful, idle_seconds=0.05)  # type: ignore[arg-type]
    task = asyncio.create_task(publisher.run())
    try:
        await eventually(lambda: publisher.published == 5, what="the outbox published")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert forgetful.failed
    assert await store.pending_events(10) == []
    info = await bus.js.stream_info(RECORDS_STREAM)
    assert info.state.messages == 5
