"""Bulk import and export, on both backends: per-row verdicts in the report, nothing of an
unreadable file imported, identical rows changing nothing, and export read back by import."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from records_support import Clock, facility, health, opened, records_service, ticket

from smartcity.services.records.bulk import export_records, import_file
from smartcity.services.records.files import FileRefused
from smartcity.services.records.search import Search
from smartcity.services.records.service import RecordsService
from smartcity.services.records.store import RecordStore


def jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def report_of(path: Path) -> dict[int, str]:
    return {item["row"]: item["error"] for item in map(json.loads, path.read_text().splitlines())}


@pytest.fixture
def service(store: RecordStore, clock: Clock) -> RecordsService:
    return records_service(store, clock)


async def test_every_row_gets_a_verdict_and_errors_go_to_the_report(
    service: RecordsService, store: RecordStore, tmp_path: Path
) -> None:
    deep: dict[str, Any] = {"x": 1}
    for _ in range(30):
        deep = {"x": deep}
    bad_date = health("c-2")
    bad_date["patient"]["birth_date"] = "yesterday"
    rows = [
        {"type": "feedback_ticket", "data": ticket("c-1")},
        {"type": "health_record", "data": bad_date},
        {"type": "parking_permit", "data": {"a": 1}},
        "{not json",
        {"type": "food_facility", "owner_id": "o-1", "data": facility(extra=deep)},
        {"type": "food_facility", "data": facility()},
        {"type": "food_facility", "owner_id": "o-1", "data": facility(), "colour": "red"},
        {"id": "hcm-001", "type": "health_record", "data": health("c-3"), "reason": "from HIS"},
        "",
        {"type": "feedback_ticket", "data": ticket("c-1")},
    ]
    source = jsonl(tmp_path / "in.jsonl", rows)
    report = tmp_path / "report.jsonl"
    stats = await import_file(service, None, source, "jsonl", report=report, chunk=3)
    assert (stats.created, stats.unchanged, stats.refused) == (2, 1, 6)
    errors = report_of(report)
    assert errors[2] == "/patient/birth_date: not a date"
    assert "unknown record type 'parking_permit'" in errors[3]
    assert errors[4].startswith("not JSON")
    assert "nested deeper than 16 levels" in errors[5]
    assert errors[6].startswith("owner_id: required")
    assert errors[7] == "unknown keys: colour"
    assert sorted(errors) == [2, 3, 4, 5, 6, 7]
    assert await store.count() == 2
    assert len(await store.pending_events(10)) == 2
    imported = (await store.latest(["hcm-001"]))["hcm-001"]
    assert (imported.owner.id, imported.reason, imported.version) == ("c-3", "from HIS", 1)


async def test_identical_rows_change_nothing_and_changed_ones_add_a_version(
    service: RecordsService, store: RecordStore, tmp_path: Path
) -> None:
    rows = [{"type": "feedback_ticket", "data": ticket(f"c-{n}")} for n in range(20)]
    first = await import_file(
        service, None, jsonl(tmp_path / "a.jsonl", rows), "jsonl", report=tmp_path / "r1"
    )
    assert first.created == 20
    rows[3] = {"type": "feedback_ticket", "data": ticket("c-3", title="Broken street light")}
    again = await import_file(
        service, None, jsonl(tmp_path / "b.jsonl", rows[::-1]), "jsonl", report=tmp_path / "r2"
    )
    assert (again.created, again.updated, again.unchanged) == (1, 0, 19)
    keyed = [
        {"id": f"k-{n}", "type": "food_facility", "owner_id": "o", "data": facility()}
        for n in range(3)
    ]
    await import_file(
        service, None, jsonl(tmp_path / "c.jsonl", keyed), "jsonl", report=tmp_path / "r3"
    )
    keyed[1]["data"] = facility(name="renamed")
    changed = await import_file(
        service, None, jsonl(tmp_path / "d.jsonl", keyed), "jsonl", report=tmp_path / "r4"
    )
    assert (changed.created, changed.updated, changed.unchanged) == (0, 1, 2)
    assert [v.version for v in await store.history("k-1", limit=5)] == [2, 1]
    assert await store.count() == 24
    assert len(await store.pending_events(100)) == 25


async def test_the_same_file_again_resumes_past_what_was_imported(
    service: RecordsService, store: RecordStore, tmp_path: Path
) -> None:
    source = jsonl(
        tmp_path / "in.jsonl",
        [{"type": "food_facility", "owner_id": f"o-{n}", "data": facility()} for n in range(7)],
    )
    await import_file(service, None, source, "jsonl", report=tmp_path / "r", chunk=2)
    again = await import_file(service, None, source, "jsonl", report=tmp_path / "r", chunk=2)
    assert (again.skipped, again.created, again.unchanged) == (7, 0, 0)
    assert await store.count() == 7


async def test_a_write_that_fails_mid_import_stops_it_at_the_last_committed_chunk(
    service: RecordsService, store: RecordStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Chunks are written while the next ones are read: a failed write ends the import with
    its error, the chunks before it stay committed and counted, and the run after resumes
    there, so every row is imported once."""
    rows = [{"type": "food_facility", "owner_id": f"o-{n}", "data": facility()} for n in range(50)]
    source = jsonl(tmp_path / "in.jsonl", rows)
    write = store.write
    calls = 0

    async def failing_third(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise ConnectionError("database went away")
        return await write(*args, **kwargs)

    monkeypatch.setattr(store, "write", failing_third)
    with pytest.raises(ConnectionError, match="database went away"):
        await import_file(service, None, source, "jsonl", report=tmp_path / "r", chunk=7)
    assert await store.count() == 14
    monkeypatch.setattr(store, "write", write)
    again = await import_file(service, None, source, "jsonl", report=tmp_path / "r", chunk=7)
    assert (again.skipped, again.created) == (14, 36)
    assert await store.count() == 50
    assert len(await store.pending_events(100)) == 50


def csv_text(*lines: str) -> str:
    return "\r\n".join(lines) + "\r\n"


async def test_csv_with_quotes_and_a_byte_order_mark_is_imported(
    service: RecordsService, store: RecordStore, tmp_path: Path
) -> None:
    data = json.dumps(facility(name='Quan "Ba Lu", since 1990')).replace('"', '""')
    source = tmp_path / "facilities.csv"
    source.write_bytes(
        b"\xef\xbb\xbf"
        + csv_text(
            "type,owner_id,data", f'food_facility,o-1,"{data}"', "food_facility,o-2,{}"
        ).encode()
    )
    stats = await import_file(service, None, source, "csv", report=tmp_path / "r")
    assert (stats.created, stats.refused) == (1, 1)
    (item,) = (await store.search(Search_all(), limit=10))[0]
    assert item.data is not None
    assert item.data["name"] == 'Quan "Ba Lu", since 1990'
    assert "/name: required" in report_of(tmp_path / "r")[3]


def Search_all() -> Any:  # noqa: N802 - reads as the query it builds
    from smartcity.services.records.model import SearchQuery

    return SearchQuery()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (csv_text("type,data", 'food_facility,"{}"', 'food_facility,"{"x"'), "malformed CSV"),
        (b"type,data\r\nfood_facility,{}\r\nfood_facility,caf\xe9\r\n", "line 3: not UTF-8"),
        (csv_text("type,data", "food_facility,{},extra"), "columns expected"),
        (csv_text("kind,payload", "food_facility,{}"), "needs the columns type and data"),
        (csv_text("type,data", "food_facility,{}", "\ufeffx,{}"), None),
    ],
)
async def test_an_unreadable_csv_is_refused_naming_the_row_and_nothing_is_imported(
    service: RecordsService, store: RecordStore, tmp_path: Path, content: Any, expected: str | None
) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(content.encode() if isinstance(content, str) else content)
    if expected is None:
        stats = await import_file(service, None, source, "csv", report=tmp_path / "r")
        assert stats.refused == 2  # a BOM inside the file is data, refused as a row
        return
    with pytest.raises(FileRefused, match=expected):
        await import_file(service, None, source, "csv", report=tmp_path / "r")
    assert await store.count() == 0


async def test_an_export_imports_into_another_store_as_the_same_records(
    service: RecordsService, store: RecordStore, tmp_path: Path
) -> None:
    await service.create(None, "feedback_ticket", ticket("c-1"))
    await service.create(None, "food_facility", facility(), owner_id="o-1")
    await service.create(None, "health_record", health("c-2"))
    for fmt in ("jsonl", "csv"):
        out = io.StringIO()
        count = await export_records(service, None, out, fmt, Search(reason="migration"))
        assert count == 3
        source = tmp_path / f"export.{fmt}"
        source.write_text(out.getvalue())
        async with opened(f"sqlite:///{tmp_path / fmt}.db") as other:
            copy = records_service(other)
            stats = await import_file(copy, None, source, fmt, report=tmp_path / f"{fmt}.r")
            assert (stats.created, stats.refused) == (3, 0)
            ids = sorted(
                json.loads(line)["id"]
                for line in out.getvalue().splitlines()
                if line.startswith("{")
            )
            if fmt == "jsonl":
                originals = await store.latest(ids)
                copies = await other.latest(ids)
                assert {i: v.data for i, v in copies.items()} == {
                    i: v.data for i, v in originals.items()
                }
