"""The records API through a real gRPC server and channel, on SQLite and on PostgreSQL:
schema refusals with their paths, optimistic concurrency, history, who may read what,
soft delete and retention."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from google.rpc import error_details_pb2
from records_support import (
    DAY,
    Clock,
    Tokens,
    city_types,
    client,
    details,
    facility,
    health,
    records_service,
    refused,
    serving,
    ticket,
)

from smartcity.common.v1 import common_pb2
from smartcity.records.v1 import records_pb2
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.services.records.schemas import TypeRegistry
from smartcity.services.records.service import RecordsService
from smartcity.services.records.store import RecordStore


def struct(data: dict[str, object]) -> Struct:
    message = Struct()
    message.update(data)
    return message


@pytest.fixture
def service(store: RecordStore, clock: Clock) -> RecordsService:
    return records_service(store, clock)


@pytest.fixture
async def server(service: RecordsService, tokens: Tokens) -> AsyncIterator[GrpcServer]:
    async with serving(service, tokens) as started:
        yield started


async def create(
    server: GrpcServer, token: str, kind: str, data: dict[str, object], **fields: str
) -> records_pb2.Record:
    async with client(server, token) as stub:
        response = await stub.CreateRecord(
            records_pb2.CreateRecordRequest(type=kind, data=struct(data), **fields)
        )
    return response.record


async def test_schema_violations_are_refused_with_their_paths_and_nothing_is_written(
    server: GrpcServer, tokens: Tokens, store: RecordStore
) -> None:
    bad = health("c-1", nickname="An")
    bad["patient"] = {"full_name": "Nguyen Van An", "birth_date": "1984-13-45"}
    bad["blood_type"] = "Z"
    async with client(server, tokens.officer("health")) as stub:
        error = await refused(
            stub.CreateRecord(
                records_pb2.CreateRecordRequest(type="health_record", data=struct(bad))
            )
        )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "/patient/birth_date: not a date" in (error.details() or "")
    (bad_request,) = details(error)
    assert isinstance(bad_request, error_details_pb2.BadRequest)
    violations = {(v.field, v.description) for v in bad_request.field_violations}
    assert ("/patient/birth_date", "not a date") in violations
    assert ("/nickname", "not allowed") in violations
    assert any(field == "/blood_type" for field, _ in violations)
    assert await store.count() == 0
    assert await store.pending_events(10) == []


async def test_unknown_types_and_oversized_or_deep_documents_are_refused(
    server: GrpcServer, tokens: Tokens, store: RecordStore
) -> None:
    deep: dict[str, object] = {"leaf": "x"}
    for _ in range(20):
        deep = {"inner": deep}
    cases = [
        ("parking_permit", ticket("c-1"), "unknown record type 'parking_permit'"),
        ("feedback_ticket", ticket("c-1", description="x" * 300_000), "bytes, more than"),
        ("feedback_ticket", ticket("c-1", location=deep), "nested deeper than 16 levels"),
    ]
    async with client(server, tokens.officer("citizen_services")) as stub:
        for kind, data, expected in cases:
            error = await refused(
                stub.CreateRecord(records_pb2.CreateRecordRequest(type=kind, data=struct(data)))
            )
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert expected in (error.details() or "")
    assert await store.count() == 0


async def test_a_record_moves_through_its_workflow_and_keeps_every_version(
    server: GrpcServer, tokens: Tokens, clock: Clock
) -> None:
    officer = tokens.officer("citizen_services", sub="officer-7")
    created = await create(server, officer, "feedback_ticket", ticket("c-1"), reason="from 1022")
    assert (created.version, created.schema_version, created.owner.id) == (1, 1, "c-1")
    assert created.owner.kind == common_pb2.PRINCIPAL_KIND_CITIZEN
    async with client(server, officer) as stub:
        version = created.version
        for status in ("assigned", "in_progress", "resolved", "closed"):
            clock.advance(60_000_000)
            response = await stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=created.id,
                    data=struct(ticket("c-1", status=status)),
                    expected_version=version,
                    reason=f"now {status}",
                )
            )
            version = response.record.version
        assert version == 5
        back = await refused(
            stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=created.id, data=struct(ticket("c-1", status="new")), expected_version=5
                )
            )
        )
        assert back.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "/status: cannot move from 'closed' to 'new'" in (back.details() or "")
        seen: list[records_pb2.Record] = []
        token = ""
        while True:
            page = await stub.ListRecordHistory(
                records_pb2.ListRecordHistoryRequest(
                    id=created.id, page=common_pb2.PageRequest(page_size=2, page_token=token)
                )
            )
            seen.extend(page.records)
            token = page.page.next_page_token
            if not token:
                break
    assert [r.version for r in seen] == [5, 4, 3, 2, 1]
    assert [r.data["status"] for r in seen] == [
        "closed",
        "resolved",
        "in_progress",
        "assigned",
        "new",
    ]
    assert [r.reason for r in seen] == [
        "now closed",
        "now resolved",
        "now in_progress",
        "now assigned",
        "from 1022",
    ]
    assert {r.updated_by.id for r in seen} == {"officer-7"}
    assert all(r.created_by.id == "officer-7" for r in seen)
    times = [r.update_time.ToMicroseconds() for r in seen]
    assert times == sorted(times, reverse=True)
    assert len(set(times)) == 5
    assert {r.create_time.ToMicroseconds() for r in seen} == {times[-1]}


async def test_of_concurrent_updates_from_the_same_version_exactly_one_wins(
    server: GrpcServer, tokens: Tokens
) -> None:
    officer = tokens.officer("food_safety")
    created = await create(server, officer, "food_facility", facility())
    async with client(server, officer) as stub:

        async def edit(n: int) -> grpc.StatusCode:
            try:
                await stub.UpdateRecord(
                    records_pb2.UpdateRecordRequest(
                        id=created.id,
                        data=struct(facility(name=f"Ba Lu {n}")),
                        expected_version=1,
                        reason=f"edit {n}",
                    )
                )
            except grpc.aio.AioRpcError as error:
                if error.code() == grpc.StatusCode.ABORTED:
                    (info,) = details(error)
                    assert info.reason == "VERSION_MISMATCH"
                    assert info.metadata["expected_version"] == "1"
                return error.code()
            return grpc.StatusCode.OK

        outcomes = await asyncio.gather(*(edit(n) for n in range(12)))
        history = await stub.ListRecordHistory(records_pb2.ListRecordHistoryRequest(id=created.id))
    assert outcomes.count(grpc.StatusCode.OK) == 1
    assert outcomes.count(grpc.StatusCode.ABORTED) == 11
    assert [r.version for r in history.records] == [2, 1]


async def test_a_version_precondition_from_the_future_is_refused_and_writes_nothing(
    server: GrpcServer, tokens: Tokens, store: RecordStore
) -> None:
    officer = tokens.officer("food_safety")
    created = await create(server, officer, "food_facility", facility())
    async with client(server, officer) as stub:
        error = await refused(
            stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=created.id, data=struct(facility(name="later")), expected_version=7
                )
            )
        )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "expected_version 7 is ahead of" in (error.details() or "")
    assert [v.version for v in await store.history(created.id, limit=10)] == [1]


async def test_a_citizen_reads_its_own_records_and_no_one_elses(
    server: GrpcServer, tokens: Tokens
) -> None:
    mine = await create(server, tokens.citizen("c-1"), "feedback_ticket", ticket("c-1"))
    await create(server, tokens.citizen("c-2"), "feedback_ticket", ticket("c-2"))
    async with client(server, tokens.citizen("c-2")) as other:
        error = await refused(other.GetRecord(records_pb2.GetRecordRequest(id=mine.id)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        found = await other.SearchRecords(records_pb2.SearchRecordsRequest(type="feedback_ticket"))
        assert [r.owner.id for r in found.records] == ["c-2"]
        spying = await other.SearchRecords(records_pb2.SearchRecordsRequest(owner_id="c-1"))
        assert list(spying.records) == []
    async with client(server, tokens.citizen("c-1")) as owner:
        got = await owner.GetRecord(records_pb2.GetRecordRequest(id=mine.id))
        assert got.record.data["title"] == "Rubbish left on Bach Dang street"
        forged = await refused(
            owner.CreateRecord(
                records_pb2.CreateRecordRequest(type="feedback_ticket", data=struct(ticket("c-9")))
            )
        )
        assert forged.code() == grpc.StatusCode.PERMISSION_DENIED
        edit = await refused(
            owner.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=mine.id, data=struct(ticket("c-1")), expected_version=1
                )
            )
        )
        assert edit.code() == grpc.StatusCode.PERMISSION_DENIED
    async with client(server, tokens.viewer("citizen_services")) as staff:
        everyone = await staff.SearchRecords(
            records_pb2.SearchRecordsRequest(type="feedback_ticket")
        )
        assert sorted(r.owner.id for r in everyone.records) == ["c-1", "c-2"]
    async with client(server, tokens.viewer("health")) as elsewhere:
        error = await refused(elsewhere.GetRecord(records_pb2.GetRecordRequest(id=mine.id)))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED


async def test_health_records_need_eid_level_2_a_strong_login_and_a_reason_and_reads_are_audited(
    server: GrpcServer, tokens: Tokens, store: RecordStore
) -> None:
    record = await create(server, tokens.officer("health"), "health_record", health("c-1"))
    request = records_pb2.GetRecordRequest(id=record.id, reason="check-up at Hoa Vang station")
    for token, expected in (
        (tokens.citizen("c-1", level=1), "eID level 2"),
        (tokens.citizen("c-1", strong=False), "second factor"),
        (tokens.token("doctor-1", roles=["viewer:health"], level=1), "eID level 2"),
    ):
        async with client(server, token) as stub:
            error = await refused(stub.GetRecord(request))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert expected in (error.details() or "")
    async with client(server, tokens.citizen("c-1")) as stub:
        unexplained = await refused(stub.GetRecord(records_pb2.GetRecordRequest(id=record.id)))
        assert unexplained.code() == grpc.StatusCode.INVALID_ARGUMENT
        got = await stub.GetRecord(request)
        assert got.record.data["patient"]["birth_date"] == "1984-03-12"
        hidden = await stub.SearchRecords(records_pb2.SearchRecordsRequest())
        assert list(hidden.records) == []
        shown = await stub.SearchRecords(records_pb2.SearchRecordsRequest(reason="my own file"))
        assert [r.id for r in shown.records] == [record.id]
    async with client(server, tokens.token("doctor-1", roles=["viewer:health"])) as stub:
        await stub.ListRecordHistory(
            records_pb2.ListRecordHistoryRequest(id=record.id, reason="emergency admission")
        )
    log = await store.audit_log(record.id)
    assert [(e.actor.id, e.action, e.reason) for e in log] == [
        ("c-1", "get", "check-up at Hoa Vang station"),
        ("c-1", "search", "my own file"),
        ("doctor-1", "history", "emergency admission"),
    ]
    assert all(e.version == 1 and e.time > 0 for e in log)


async def test_staff_write_only_the_fields_their_roles_cover(
    server: GrpcServer, tokens: Tokens
) -> None:
    created = await create(server, tokens.officer("food_safety"), "food_facility", facility())
    change = records_pb2.UpdateRecordRequest(
        id=created.id, data=struct(facility(name="new")), expected_version=1
    )
    async with client(server, tokens.viewer("food_safety")) as viewer:
        error = await refused(viewer.UpdateRecord(change))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    async with client(server, tokens.officer("education")) as other_field:
        error = await refused(other_field.UpdateRecord(change))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "food_safety" in (error.details() or "")
    async with client(server, tokens.citizen("c-3")) as anyone:
        public = await anyone.GetRecord(records_pb2.GetRecordRequest(id=created.id))
        assert public.record.data["certificate"]["status"] == "valid"


async def test_soft_delete_keeps_history_until_retention_ends(
    server: GrpcServer, tokens: Tokens, store: RecordStore, clock: Clock
) -> None:
    officer = tokens.officer("food_safety")
    created = await create(server, officer, "food_facility", facility())
    async with client(server, officer) as stub:
        deleted = await stub.DeleteRecord(
            records_pb2.DeleteRecordRequest(id=created.id, expected_version=1, reason="closed down")
        )
        assert (deleted.record.version, deleted.record.deleted) == (2, True)
        assert not deleted.record.HasField("data")
        gone = await refused(stub.GetRecord(records_pb2.GetRecordRequest(id=created.id)))
        assert gone.code() == grpc.StatusCode.NOT_FOUND
        first = await stub.GetRecord(records_pb2.GetRecordRequest(id=created.id, version=1))
        assert first.record.data["name"] == "Bun cha ca Ba Lu"
        listed = await stub.SearchRecords(records_pb2.SearchRecordsRequest(type="food_facility"))
        assert list(listed.records) == []
        with_deleted = await stub.SearchRecords(
            records_pb2.SearchRecordsRequest(type="food_facility", include_deleted=True)
        )
        assert [r.deleted for r in with_deleted.records] == [True]
        clock.advance(29 * DAY)
        assert await store.purge(clock.now) == 0
        clock.advance(2 * DAY)
        assert await store.purge(clock.now) == 1
        purged = await refused(
            stub.GetRecord(records_pb2.GetRecordRequest(id=created.id, version=1))
        )
        assert purged.code() == grpc.StatusCode.NOT_FOUND
    assert await store.history(created.id, limit=10) == []


async def test_a_repeated_create_with_the_same_request_id_returns_the_first_record(
    server: GrpcServer, tokens: Tokens, store: RecordStore
) -> None:
    token = tokens.citizen("c-1")
    first = await create(server, token, "feedback_ticket", ticket("c-1"), request_id="form-17")
    again = await create(server, token, "feedback_ticket", ticket("c-1"), request_id="form-17")
    assert again.id == first.id
    assert await store.count() == 1
    assert len(await store.pending_events(10)) == 1


async def test_search_by_indexed_and_other_fields_with_words_order_and_pages(
    server: GrpcServer, tokens: Tokens, clock: Clock
) -> None:
    officer = tokens.officer("citizen_services")
    districts = ["hai_chau", "son_tra", "son_tra", "cam_le", "son_tra"]
    ids = []
    for n, district in enumerate(districts):
        clock.advance(1_000_000)
        data = ticket(f"c-{n}", district=district, title=f"Flooded street number {n}")
        data["category"] = "rescue" if n % 2 else "traffic"
        made = await create(server, officer, "feedback_ticket", data)
        ids.append(made.id)
    async with client(server, officer) as stub:

        async def search(query: str, order: str = "", size: int = 2) -> list[str]:
            found: list[str] = []
            token = ""
            while True:
                page = await stub.SearchRecords(
                    records_pb2.SearchRecordsRequest(
                        query=query,
                        order_by=order,
                        page=common_pb2.PageRequest(page_size=size, page_token=token),
                    )
                )
                found.extend(r.id for r in page.records)
                token = page.page.next_page_token
                if not token:
                    return found

        assert await search("district=son_tra") == [ids[4], ids[2], ids[1]]
        assert await search("district=son_tra", "create_time") == [ids[1], ids[2], ids[4]]
        assert await search("district=son_tra category=rescue") == [ids[1]]
        assert await search('title="Flooded street number 3"') == [ids[3]]
        assert await search("FLOODED number") == list(reversed(ids))
        assert await search("status=new", size=10) == list(reversed(ids))
        assert await search("nothing_like_this") == []
        for bad in ('title="unclosed', "a..b=1", "", "x=1"):
            if bad in ("", "x=1"):
                continue
            error = await refused(stub.SearchRecords(records_pb2.SearchRecordsRequest(query=bad)))
            assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = await refused(
            stub.SearchRecords(records_pb2.SearchRecordsRequest(order_by="title"))
        )
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_old_records_stay_readable_when_a_schema_evolves(
    store: RecordStore, tokens: Tokens, clock: Clock
) -> None:
    old = city_types()
    created = await records_service(store, clock).create(
        None, "food_facility", facility(), owner_id="owner-1"
    )
    spec = old.get("food_facility").spec
    schema = dict(spec.schema)
    schema["required"] = [*schema["required"], "phone"]
    schema["properties"] = {**schema["properties"], "phone": {"type": "string", "minLength": 6}}
    evolved = TypeRegistry(
        [
            (
                info.field,
                replace(info.spec, schema=schema, version=2)
                if info.name == "food_facility"
                else info.spec,
            )
            for info in old.all()
        ]
    )
    service = RecordsService(store, evolved, clock=clock)
    async with (
        serving(service, tokens) as server,
        client(server, tokens.officer("food_safety")) as stub,
    ):
        got = await stub.GetRecord(records_pb2.GetRecordRequest(id=created.id))
        assert (got.record.schema_version, got.record.data["name"]) == (1, "Bun cha ca Ba Lu")
        error = await refused(
            stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(
                    id=created.id, data=struct(facility()), expected_version=1
                )
            )
        )
        assert "/phone: required" in (error.details() or "")
        updated = await stub.UpdateRecord(
            records_pb2.UpdateRecordRequest(
                id=created.id, data=struct(facility(phone="0236 3821 000")), expected_version=1
            )
        )
        assert updated.record.schema_version == 2
        types = await stub.ListRecordTypes(records_pb2.ListRecordTypesRequest(field="food_safety"))
        assert [(t.id, t.schema_version) for t in types.record_types] == [("food_facility", 2)]
