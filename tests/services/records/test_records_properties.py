"""Arbitrary input gets a verdict: any JSON document, any request field, any file bytes are
accepted or refused with a reason, never an internal error, and a refusal writes nothing."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from google.protobuf.struct_pb2 import Struct
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from records_support import Clock, Tokens, city_types, client, records_service, serving, ticket

from smartcity.records.v1 import records_pb2
from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.grpc_server import GrpcServer
from smartcity.services.records.files import FileRefused, read_csv, read_jsonl
from smartcity.services.records.schemas import Limits
from smartcity.services.records.search import parse_order, parse_query
from smartcity.services.records.service import RecordsService
from smartcity.services.records.store import RecordStore

QUICK = settings(deadline=None)
SLOW = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
JSON = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
# What a protobuf Struct can carry: numbers are doubles, and no NaN reaches it from JSON.
STRUCT_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)


def almost_a_ticket() -> st.SearchStrategy[dict[str, Any]]:
    """A valid ticket with some properties replaced by anything, or extra ones added."""
    return st.builds(
        lambda changes, extra: {**ticket("c-1"), **changes, **extra},
        st.dictionaries(st.sampled_from(sorted(ticket("c-1"))), STRUCT_JSON, max_size=3),
        st.dictionaries(st.text(max_size=6), STRUCT_JSON, max_size=2),
    )


@QUICK
@given(document=JSON | almost_a_ticket())
def test_any_document_is_accepted_or_refused_with_paths(document: Any) -> None:
    info = city_types().get("feedback_ticket")
    service = RecordsService(None, city_types(), limits=Limits(max_depth=6))  # type: ignore[arg-type]
    refusal: InvalidArgument | None = None
    try:
        accepted, text = service.document(
            info, document if isinstance(document, dict) else {"v": document}
        )
    except InvalidArgument as exc:
        refusal = exc
    if refusal is None:
        # What is accepted is valid by the reference implementation too.
        assert info.validator.is_valid(accepted)
        assert json.loads(text) == accepted
        return
    assert refusal.message
    violations = getattr(refusal, "violations", [])
    assert all(v.path == "" or v.path.startswith("/") for v in violations)


@QUICK
@given(text=st.text(max_size=60), order=st.text(max_size=20))
def test_any_query_and_order_is_parsed_or_refused(text: str, order: str) -> None:
    for parse, value in ((parse_query, text), (parse_order, order)):
        message = "parsed"
        try:
            parse(value)
        except InvalidArgument as exc:
            message = exc.message
        assert message


@QUICK
@given(content=st.binary(max_size=300) | st.text(max_size=200).map(str.encode))
def test_any_file_content_gets_a_verdict(content: bytes) -> None:
    for read in (read_jsonl, read_csv):
        verdicts: list[object] = []
        try:
            verdicts.extend(read(io.BytesIO(content)))
        except FileRefused as exc:
            verdicts.append(str(exc))
        assert all((isinstance(v, str) and v) or getattr(v, "number", 0) >= 1 for v in verdicts)


@pytest.fixture
async def server(store: RecordStore, tokens: Tokens) -> AsyncIterator[GrpcServer]:
    async with serving(records_service(store, Clock()), tokens) as started:
        yield started


@SLOW
@given(
    kind=st.sampled_from(["feedback_ticket", "health_record", "food_facility"])
    | st.text(max_size=12),
    document=STRUCT_JSON | almost_a_ticket(),
    record_id=st.text(max_size=30),
    version=st.integers(-(2**63), 2**63 - 1),
    query=st.text(max_size=40),
    owner=st.text(max_size=10),
)
# A NUL in a search filter once reached PostgreSQL, which refuses it as an internal error.
@example(kind="feedback_ticket", document=None, record_id="", version=0, query="", owner="\x00")
async def test_any_request_gets_a_verdict_and_a_refusal_writes_nothing(
    server: GrpcServer,
    store: RecordStore,
    tokens: Tokens,
    kind: str,
    document: Any,
    record_id: str,
    version: int,
    query: str,
    owner: str,
) -> None:
    data = Struct()
    data.update(document if isinstance(document, dict) else {"value": document})
    before = await store.count()
    async with client(server, tokens.officer("*", sub="officer-any")) as stub:
        calls = [
            stub.CreateRecord(
                records_pb2.CreateRecordRequest(type=kind, data=data, owner_id=owner)
            ),
            stub.GetRecord(
                records_pb2.GetRecordRequest(id=record_id, version=version, reason="audit")
            ),
            stub.UpdateRecord(
                records_pb2.UpdateRecordRequest(id=record_id, data=data, expected_version=version)
            ),
            stub.SearchRecords(
                records_pb2.SearchRecordsRequest(query=query, type=kind, owner_id=owner, reason="x")
            ),
            stub.ListRecordHistory(records_pb2.ListRecordHistoryRequest(id=record_id, reason="x")),
        ]
        created = 0
        refusals: list[tuple[grpc.StatusCode, str]] = []
        for call in calls:
            try:
                response = await call
            except grpc.aio.AioRpcError as error:
                refusals.append((error.code(), error.details() or ""))
                continue
            created += isinstance(response, records_pb2.CreateRecordResponse)
    assert all(
        code not in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN) for code, _ in refusals
    ), refusals
    assert all(text for _, text in refusals)
    assert await store.count() == before + created
