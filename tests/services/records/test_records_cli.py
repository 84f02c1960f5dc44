"""``smartcity records import|export|get|history`` and ``smartcity bench records`` from the
command line, end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from records_support import Tokens, opened, records_service, serving, ticket
from typer.testing import CliRunner

from smartcity.cli.main import app


def test_import_then_export_from_the_command_line(tmp_path: Path) -> None:
    store = f"sqlite:///{tmp_path / 'records.db'}"
    source = tmp_path / "tickets.jsonl"
    rows = [{"type": "feedback_ticket", "data": ticket(f"c-{n}")} for n in range(5)]
    rows.append({"type": "feedback_ticket", "data": ticket("c-9", status="done")})
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    runner = CliRunner()
    done = runner.invoke(app, ["records", "import", str(source), "--store", store])
    assert done.exit_code == 1, done.output
    assert "5 created, 0 updated, 0 unchanged, 1 refused" in done.output
    report = (tmp_path / "tickets.jsonl.errors.jsonl").read_text().splitlines()
    assert [json.loads(line)["row"] for line in report] == [6]
    exported = runner.invoke(
        app, ["records", "export", "--store", store, "--type", "feedback_ticket"]
    )
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines() if line.startswith("{")]
    assert sorted(line["owner_id"] for line in lines) == [f"c-{n}" for n in range(5)]
    broken = tmp_path / "broken.csv"
    broken.write_bytes(b'type,data\r\nfeedback_ticket,"{\r\n')
    refused = runner.invoke(app, ["records", "import", str(broken), "--store", store])
    assert refused.exit_code == 2
    assert "malformed CSV" in refused.output


async def test_get_and_history_speak_the_api(tmp_path: Path, tokens: Tokens) -> None:
    async with opened(f"sqlite:///{tmp_path / 'records.db'}") as store:
        service = records_service(store)
        created = await service.create(None, "feedback_ticket", ticket("c-1"))
        await service.update(None, created.id, ticket("c-1", status="assigned"), expected_version=1)
        async with serving(service, tokens) as server:
            token = tokens.citizen("c-1")
            runner = CliRunner()
            base = ["--target", server.address, "--token", token]
            got = await asyncio.to_thread(runner.invoke, app, ["records", "get", created.id, *base])
            history = await asyncio.to_thread(
                runner.invoke, app, ["records", "history", created.id, *base]
            )
            other = await asyncio.to_thread(
                runner.invoke,
                app,
                [
                    "records",
                    "get",
                    created.id,
                    "--target",
                    server.address,
                    "--token",
                    tokens.citizen("c-2"),
                ],
            )
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout)["data"]["status"] == "assigned"
    assert [json.loads(line)["version"] for line in history.stdout.splitlines()] == ["2", "1"]
    assert other.exit_code == 1
    assert "permission denied:" in other.output


@pytest.mark.postgres
def test_bench_records_prints_each_figure_next_to_the_raw_copy() -> None:
    url = os.environ.get("SMARTCITY_TEST_POSTGRES_URL")
    if not url:
        pytest.skip("SMARTCITY_TEST_POSTGRES_URL is not set (postgresql://user@host/db)")
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli.main", "bench", "records", "--postgres", url,
         "--rows", "3000", "--samples", "100"],
        capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for row in (
        "raw COPY of the same rows (ceiling)",
        "COPY of the import's rows into the service's tables",
        "import",
        "get, p50 / p99",
        "search by indexed field",
    ):
        line = next((line for line in done.stdout.splitlines() if row in line), None)
        assert line is not None, f"{row!r} missing from:\n{done.stdout}"
