"""``smartcity query latest|range`` against a real monitoring gRPC server on loopback.

The command runs its own event loop (``asyncio.run``), so the server runs in a thread with
an event loop of its own, over a real SQLite store and with token verification on.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from token_support import ISSUER, Signer
from typer.testing import CliRunner

from smartcity.cli.query import parse_duration, parse_time, query_app
from smartcity.fields import load_fields
from smartcity.runtime.config import GrpcSettings
from smartcity.runtime.tokens import TokenVerifier
from smartcity.services.monitoring.live import LiveHub
from smartcity.services.monitoring.model import MICROS, MINUTE, IngestBatch, Quality, StoredReading
from smartcity.services.monitoring.server import build_server
from smartcity.services.monitoring.service import MonitoringService
from smartcity.services.monitoring.store.sqlite import SqliteStore

BASE = (time.time_ns() // 1000 - 30 * MINUTE) // (10 * MINUTE) * (10 * MINUTE)
"""Half an hour ago or a little more, on ten minutes (so that steps of a few minutes start
with it): the data lies within ``--since 1h`` of the real clock."""


def reading(
    metric: str, unit: str, value: float | None, time_: int, sequence: int
) -> StoredReading:
    quality = Quality.GOOD if value is not None else Quality.BAD
    reason = "" if value is not None else "probe fault"
    return StoredReading(metric, unit, value, quality, reason, time_, sequence)


def batches() -> list[IngestBatch]:
    water = [
        IngestBatch(
            batch_id=f"cau-do/analyser-1/{n}",
            field="water_supply",
            site="cau-do",
            device="analyser-1",
            agent_id="edge-1",
            readings=[
                reading("turbidity", "NTU", 1.0 + n, BASE + n * MINUTE, 2 * n + 1),
                reading("ph", "pH", 7.5 if n < 5 else None, BASE + n * MINUTE, 2 * n + 2),
            ],
            received=BASE + n * MINUTE,
        )
        for n in range(6)
    ]
    substation = IngestBatch(
        batch_id="hk/bay-1/1",
        field="electricity",
        site="hoa-khanh-110kv",
        device="bay-1-meter",
        agent_id="edge-2",
        readings=[reading("voltage_an", "kV", 22.4, BASE, 1)],
        received=BASE,
    )
    return [*water, substation]


class ServerThread:
    """A monitoring server with its own event loop in a daemon thread."""

    def __init__(self, folder: Path, verifier: TokenVerifier) -> None:
        self.folder = folder
        self.verifier = verifier
        self.address = ""
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the monitoring server did not start within 30 s")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stop = asyncio.Event()
        try:
            store = SqliteStore(f"sqlite:///{self.folder / 'monitoring.db'}")
            await store.open()
            await store.write(batches())
            service = MonitoringService(store, load_fields(), LiveHub())
            server = build_server(GrpcSettings(port=0), service, self.verifier)
            await server.start()
        except BaseException as exc:
            self._failure = exc
            self._ready.set()
            raise
        self.address = server.address
        self._ready.set()
        await self._stop.wait()
        await server.stop(0)
        await store.close()


@pytest.fixture(scope="module")
def key() -> Signer:
    return Signer()


def token(key: Signer, roles: list[str]) -> str:
    return key.sign(sub="staff-ioc-3", roles=roles, iat=int(time.time()) - 5)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, key: Signer) -> Iterator[ServerThread]:
    verifier = TokenVerifier(key.key_set(), issuer=ISSUER)
    with ServerThread(tmp_path_factory.mktemp("monitoring"), verifier) as running:
        yield running


@pytest.fixture
def cli(server: ServerThread, key: Signer, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    """Runs ``smartcity query`` against the server, as an IOC viewer of every field."""
    monkeypatch.setenv("SMARTCITY_MONITORING_TARGET", server.address)
    monkeypatch.setenv("SMARTCITY_TOKEN", token(key, ["viewer:*"]))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("SMARTCITY_CONFIG", raising=False)
    return CliRunner()


def iso(micros: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(micros // MICROS)) + "Z"


def test_latest_json_lists_every_matching_series(cli: CliRunner) -> None:
    result = cli.invoke(query_app, ["latest", "--field", "water_supply", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert [(row["device"], row["metric"]) for row in rows] == [
        ("analyser-1", "ph"),
        ("analyser-1", "turbidity"),
    ]
    ph, turbidity = rows
    assert (turbidity["value"], turbidity["unit"], turbidity["quality"]) == (6.0, "NTU", "GOOD")
    assert turbidity["time"] == iso(BASE + 5 * MINUTE)
    assert (ph["value"], ph["quality"], ph["quality_reason"]) == (None, "BAD", "probe fault")


def test_latest_table_for_people(cli: CliRunner) -> None:
    result = cli.invoke(query_app, ["latest"])
    assert result.exit_code == 0, result.output
    assert "3 series" in result.stdout
    for text in ("hoa-khanh-110kv", "voltage_an", "22.4", "kV", "BAD probe fault", "ago"):
        assert text in result.stdout


def test_range_json_with_explicit_times(cli: CliRunner) -> None:
    result = cli.invoke(
        query_app,
        [
            "range", "--metric", "turbidity", "--start", iso(BASE), "--end",
            iso(BASE + 6 * MINUTE), "--step", "2m", "--agg", "max", "--json",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    (series,) = document["series"]
    assert (series["device"], series["unit"]) == ("analyser-1", "NTU")
    assert [(p["time"], p["value"], p["count"]) for p in series["points"]] == [
        (iso(BASE + n * 2 * MINUTE), 2.0 + 2 * n, 2) for n in range(3)
    ]
    assert document["from_rollup"] is True
    assert document["rollup_resolution_seconds"] == 60


def test_range_table_since_an_hour(cli: CliRunner) -> None:
    result = cli.invoke(query_app, ["range", "-m", "turbidity", "--since", "1h", "--step", "0"])
    assert result.exit_code == 0, result.output
    assert "water_supply/cau-do/analyser-1 turbidity [NTU], raw readings" in result.stdout
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines()
        if line.startswith("│")
    ]
    assert [(value, count) for _, value, count in rows] == [(str(n), "1") for n in range(1, 7)]


def test_server_refusals_are_one_line_with_the_reason(cli: CliRunner) -> None:
    result = cli.invoke(query_app, ["range", "-m", "turbidity", "--since", "7d", "--step", "1s"])
    assert result.exit_code == 2
    assert "invalid argument:" in result.stderr
    assert "steps of 1s per series; at most 11,000 are allowed" in result.stderr


def test_a_token_is_needed_and_its_roles_count(
    cli: CliRunner, key: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMARTCITY_TOKEN")
    result = cli.invoke(query_app, ["latest"])
    assert result.exit_code == 1
    assert "unauthenticated: no access token" in result.stderr

    water_only = token(key, ["viewer:water_supply"])
    denied = cli.invoke(query_app, ["latest", "--token", water_only])
    assert denied.exit_code == 1
    assert "permission denied:" in denied.stderr
    assert "(it holds it on: water_supply)" in denied.stderr
    allowed = cli.invoke(query_app, ["latest", "-f", "water_supply", "--token", water_only])
    assert allowed.exit_code == 0, allowed.output


def test_bad_options_are_refused_before_any_call(cli: CliRunner) -> None:
    for args, message in [
        (["range", "-m", "ph", "--step", "5x"], "--step: '5x' is not a duration"),
        (["range", "-m", "ph", "--since", "1h", "--start", iso(BASE)], "either --since or"),
        (["range", "-m", "ph", "--end", iso(BASE)], "--end needs --start"),
        (["range", "-m", "ph", "--start", "yesterday"], "'yesterday' is not an ISO 8601 time"),
        (["latest", "--token", " "], "--token is empty"),
    ]:
        result = cli.invoke(query_app, args)
        assert result.exit_code == 2, (args, result.output)
        assert message in result.stderr


def test_the_target_comes_from_the_configuration(
    cli: CliRunner, server: ServerThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMARTCITY_MONITORING_TARGET")
    host, port = server.address.rsplit(":", 1)
    config = tmp_path / "city.yaml"
    config.write_text(f"grpc: {{host: '{host}', port: {port}}}\n")
    result = cli.invoke(query_app, ["latest", "--config", str(config), "--json"])
    assert result.exit_code == 0, result.output
    assert len(json.loads(result.stdout)) == 3

    # nothing configured: the service's default port on this machine
    unset = cli.invoke(query_app, ["latest", "--timeout", "2"])
    assert unset.exit_code == 1
    assert "cannot reach the monitoring service at 127.0.0.1:50051" in unset.stderr

    closed = cli.invoke(query_app, ["latest", "--target", "127.0.0.1:1", "--timeout", "2"])
    assert closed.exit_code == 1
    assert "cannot reach the monitoring service at 127.0.0.1:1" in closed.stderr


def test_durations_and_times() -> None:
    assert parse_duration("90s").total_seconds() == 90
    assert parse_duration("1h30m").total_seconds() == 5400
    assert parse_duration("500ms").total_seconds() == 0.5
    assert parse_duration("0").total_seconds() == 0
    assert parse_duration("5").total_seconds() == 5  # seconds, as in a device profile
    assert parse_duration("2min").total_seconds() == 120
    for bad in ("", "5x", "1y", "h", "1h 2m"):
        with pytest.raises(ValueError, match="is not a duration"):
            parse_duration(bad)
    assert parse_time("2026-11-22T08:00:00Z").utcoffset() is not None
    assert parse_time("2026-11-22T08:00").utcoffset() is not None  # local time
