"""An import killed part-way (SIGKILL, mid-transaction as likely as not) and run again: every
row is imported exactly once, counted, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from records_support import opened, ticket
from support import eventually

pytestmark = pytest.mark.slow

ROWS = 12_000


def run_import(source: Path, url: str, folder: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "smartcity.cli.main", "records", "import", str(source),
         "--store", url, "--chunk", "100", "--report", str(folder / "report.jsonl")],
        env={**os.environ, "SMARTCITY_DATA_DIR": str(folder / "data")},
        stdout=subprocess.PIPE,
        stderr=open(folder / "import.log", "ab"),
    )  # fmt: skip


async def rows_done(url: str) -> int:
    """The import's checkpoint, read beside the importer (no store of our own: opening one
    would wait for its migrations lock)."""
    try:
        if url.startswith("sqlite:"):
            with sqlite3.connect(url.removeprefix("sqlite:///"), timeout=5) as db:
                found = db.execute("SELECT coalesce(max(rows_done), 0) FROM imports").fetchone()
                return int(found[0])
        conn = await asyncpg.connect(url)
        try:
            return int(await conn.fetchval("SELECT coalesce(max(rows_done), 0) FROM imports"))
        finally:
            await conn.close()
    except (sqlite3.OperationalError, asyncpg.UndefinedTableError):
        return 0


async def test_an_interrupted_import_resumed_imports_every_row_exactly_once(
    store_url: str, tmp_path: Path
) -> None:
    source = tmp_path / "tickets.jsonl"
    with source.open("w") as out:
        for n in range(ROWS):
            data = ticket(f"c-{n}", title=f"Ticket {n} from the old portal")
            out.write(json.dumps({"type": "feedback_ticket", "data": data}) + "\n")
    first = run_import(source, store_url, tmp_path)
    try:
        await eventually(lambda: rows_done(store_url), within=60, what="a first chunk committed")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    done_at_kill = await rows_done(store_url)
    assert 0 < done_at_kill < ROWS, "the kill must land part-way through the import"
    second = run_import(source, store_url, tmp_path)
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, (tmp_path / "import.log").read_text()[-2000:]
    summary = output.decode()
    assert f"{ROWS - done_at_kill} created" in summary
    assert f"{done_at_kill} imported before" in summary
    async with opened(store_url) as store:
        assert await store.count("feedback_ticket") == ROWS
        assert await store.import_progress(next(iter(await _imports(store_url)))) == ROWS
        events = await store.pending_events(ROWS + 100)
        assert len(events) == ROWS
        assert len({e.record_id for e in events}) == ROWS
        assert {e.version for e in events} == {1}
    assert not (tmp_path / "report.jsonl").exists() or (tmp_path / "report.jsonl").read_text() == ""


async def _imports(url: str) -> list[str]:
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:
            return [row[0] for row in db.execute("SELECT import_id FROM imports")]
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT import_id FROM imports")]
    finally:
        await conn.close()
