"""``smartcity fields`` and ``smartcity fields show``, through typer's test runner on an app
that registers the commands the way the main CLI does."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from smartcity.cli.fields import field_show_command, fields_app, fields_command
from smartcity.fields import TRACE_LOGGER

Install = Callable[..., str]

app = typer.Typer()
app.command("fields")(fields_command)
app.command("show")(field_show_command)

group = typer.Typer()
group.add_typer(fields_app)


@group.callback()
def _root() -> None:
    """A root with one group, as the main CLI has."""


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for name in ("SMARTCITY_CONFIG", "SMARTCITY_PLUGINS__ENABLED", "SMARTCITY_PLUGINS__DISABLED"):
        monkeypatch.delenv(name, raising=False)
    return CliRunner(env={"COLUMNS": "200"})


def test_table_lists_sixteen_fields_grouped_by_pillar(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fields"])
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "smartcity 0.1.0" in line]
    assert len(rows) == 16
    assert "16 smart fields" in result.stdout
    ids = [row.split("│")[2].strip() for row in rows]
    assert ids[:4] == ["governance", "citizen_services", "traffic", "transport"]
    assert ids[-1] == "tourism"
    pillars = [row.split("│")[1].strip() for row in rows]
    assert [p for p in pillars if p] == [
        "governance",
        "citizen",
        "mobility",
        "living",
        "environment",
        "economy",
    ]
    assert all("field_info, kpis, metrics" in row for row in rows)


def test_json_lists_fields_with_metrics_and_kpis(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fields", "--json"])
    assert result.exit_code == 0, result.output
    fields = json.loads(result.stdout)
    assert len(fields) == 16
    assert len({item["pillar"] for item in fields}) == 6
    for item in fields:
        assert item["metric_count"] == len(item["metrics"]) > 0
        assert item["kpi_count"] == len(item["kpis"]) > 0
        assert item["plugin"]["distribution"] == "smartcity"
        assert "field_info" in item["hooks"]
    water = next(item for item in fields if item["id"] == "water_supply")
    turbidity = next(metric for metric in water["metrics"] if metric["name"] == "turbidity")
    assert turbidity["unit"] == "NTU"


def test_bad_plugin_fails_with_its_message(
    runner: CliRunner, install: Install, plugin_source: Callable[..., str]
) -> None:
    install("odd-field", plugin_source("odd", pillar="smart"), entry_point="odd")
    result = runner.invoke(app, ["fields"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "field plugin 'odd'" in result.stderr
    assert "distribution odd-field 1.0.0" in result.stderr
    assert "pillar: 'smart' is not one of" in result.stderr


def test_config_file_selects_fields(runner: CliRunner, tmp_path: Path) -> None:
    config = tmp_path / "city.yaml"
    config.write_text("plugins:\n  enabled: [electricity, water_supply]\n", encoding="utf-8")
    result = runner.invoke(app, ["fields", "--json", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert [item["id"] for item in json.loads(result.stdout)] == ["electricity", "water_supply"]

    config.write_text("plugins:\n  enabled: [trafic]\n", encoding="utf-8")
    result = runner.invoke(app, ["fields", "--config", str(config)])
    assert result.exit_code == 1
    assert "plugins.enabled names 'trafic'" in result.stderr

    config.write_text("plugin:\n  enabled: [traffic]\n", encoding="utf-8")
    result = runner.invoke(app, ["fields", "--config", str(config)])
    assert result.exit_code == 1
    assert "plugin: unknown key" in result.stderr


def test_trace_hooks_option_traces(runner: CliRunner, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=TRACE_LOGGER)
    result = runner.invoke(app, ["fields", "--json", "--trace-hooks"])
    assert result.exit_code == 0, result.output
    calls = [r for r in caplog.records if r.name == TRACE_LOGGER and "kpis [hook]" in r.message]
    assert len(calls) == 16
    json.loads(result.stdout)  # the trace never mixes into the JSON


def test_trace_goes_to_stderr_when_logging_is_not_configured() -> None:
    """In a fresh process nothing has configured logging; the trace still reaches stderr."""
    code = (
        "import typer; from smartcity.cli.fields import fields_app; "
        "typer.main.get_command(fields_app)(['--json', '--trace-hooks'])"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={"PATH": "", "SMARTCITY_PLUGINS__ENABLED": '["energy"]'},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [item["id"] for item in json.loads(done.stdout)] == ["energy"]
    assert "smartcity.fields.trace:   field_info [hook]" in done.stderr
    assert "finish kpis -->" in done.stderr


def test_show_prints_the_catalogue_with_units_and_ranges(runner: CliRunner) -> None:
    result = runner.invoke(app, ["show", "water_supply"])
    assert result.exit_code == 0, result.output
    turbidity = next(line for line in result.stdout.splitlines() if "│ turbidity " in line)
    cells = [cell.strip() for cell in turbidity.split("│")[1:-1]]
    assert cells[:5] == ["turbidity", "gauge", "NTU", "0", "100"]
    assert "share_at_most(turbidity, 2) over 1d" in result.stdout
    assert "QCVN 01-1:2018/BYT" in result.stdout
    assert "pump_state" in result.stdout
    assert "0=stopped, 1=running, 2=tripped" in result.stdout


def test_show_unknown_field_fails(runner: CliRunner) -> None:
    result = runner.invoke(app, ["show", "parking"])
    assert result.exit_code == 1
    assert "no field 'parking' is loaded (loaded: governance," in result.stderr


def test_ready_made_group_lists_and_shows(runner: CliRunner) -> None:
    listed = runner.invoke(group, ["fields", "--json"])
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.stdout)) == 16
    shown = runner.invoke(group, ["fields", "show", "electricity", "--json"])
    assert shown.exit_code == 0, shown.output
    electricity = json.loads(shown.stdout)
    assert electricity["id"] == "electricity"
    assert {kpi["id"] for kpi in electricity["kpis"]} >= {"saidi", "saifi"}
