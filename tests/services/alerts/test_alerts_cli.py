"""``smartcity alerts`` against a running alerts service: rules from a JSON file, the alert a
reading raises, acknowledgement with its history, silences, and refusals as exit codes."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from support import eventually
from test_end_to_end import _batch, _publish, _settings, running_alerts
from typer.testing import CliRunner, Result

from smartcity.cli.alerts import alerts_app
from smartcity.runtime.bus import Bus
from smartcity.runtime.config import StreamsSettings
from smartcity.runtime.nats_server import EmbeddedNats

pytestmark = pytest.mark.slow

RULE = {
    "id": "turbidity_high",
    "display_name": "Turbidity above 2 NTU",
    "field": "water_supply",
    "selector": {"metric": "turbidity"},
    "severity": "SEVERITY_CRITICAL",
    "threshold": {"comparison": "COMPARISON_GREATER", "threshold": 2.0, "hysteresis": 0.5},
    "annotations": {"standard": "QCVN 01-1:2018/BYT"},
    "enabled": True,
}


async def _cli(target: str, *args: str) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, alerts_app, [*args, "--target", target])


async def test_the_cli_drives_rules_alerts_and_silences(
    nats_server: EmbeddedNats, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    rule_file = tmp_path / "rule.json"
    rule_file.write_text(json.dumps(RULE), encoding="utf-8")
    bus = await Bus.connect(nats_server.client_settings(), name="agent")
    await bus.ensure_streams(StreamsSettings())
    try:
        async with running_alerts(_settings(nats_server, url, tmp_path)) as running:
            target = running.grpc_address
            created = await _cli(target, "rules", "create", str(rule_file))
            assert created.exit_code == 0, created.output
            assert "rule turbidity_high created (version 1)" in created.output
            await _publish(bus, _batch(1, 4.2, time.time()))

            async def listed() -> list[dict]:  # type: ignore[type-arg]
                result = await _cli(target, "list", "--json")
                assert result.exit_code == 0, result.output
                return json.loads(result.output)  # type: ignore[no-any-return]

            await eventually(listed, what="the alert listed")
            [alert] = await listed()
            assert (alert["state"], alert["severity"]) == (
                "ALERT_STATE_FIRING",
                "SEVERITY_CRITICAL",
            )
            fingerprint = alert["fingerprint"]

            acked = await _cli(target, "ack", fingerprint, "--comment", "crew sent")
            assert acked.exit_code == 0, acked.output
            assert "as anonymous" in acked.output
            again = await _cli(target, "ack", fingerprint)
            assert again.exit_code == 1
            assert "already acknowledged by anonymous" in again.output

            shown = json.loads((await _cli(target, "show", fingerprint, "--json")).output)
            assert [(e["type"], e.get("comment", "")) for e in shown["history"]] == [
                ("TYPE_FIRING", ""),
                ("TYPE_ACKNOWLEDGED", "crew sent"),
            ]
            assert shown["history"][1]["actor"]["id"] == "anonymous"

            silenced = await _cli(
                target, "silence", "add", "--match", "site=cau-do", "--for", "2h", "--json"
            )
            assert silenced.exit_code == 0, silenced.output
            silence = json.loads(silenced.output)
            assert silence["created_by"]["id"] == "anonymous"
            active = json.loads((await _cli(target, "silence", "list", "--json")).output)
            assert [s["id"] for s in active] == [silence["id"]]
            expired = await _cli(target, "silence", "expire", silence["id"])
            assert expired.exit_code == 0, expired.output
            assert json.loads((await _cli(target, "silence", "list", "--json")).output) == []

            bad = await _cli(target, "silence", "add", "--match", "site", "--for", "1h")
            assert bad.exit_code == 2
            disabled = await _cli(target, "rules", "disable", "turbidity_high")
            assert "rule turbidity_high disabled" in disabled.output
            await eventually(
                lambda: _no_open_alerts(target), what="the disabled rule's alert resolved"
            )
            gone = await _cli(target, "rules", "delete", "no_such_rule")
            assert gone.exit_code == 2
            assert "no rule has id 'no_such_rule'" in gone.output
    finally:
        await bus.close()


async def _no_open_alerts(target: str) -> bool:
    result = await _cli(target, "list", "--json")
    return result.exit_code == 0 and json.loads(result.output) == []
