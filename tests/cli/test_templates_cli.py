"""``smartcity agent templates`` / ``agent template``: ready profiles from the field plugins."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from smartcity.agents.profile import load_profile
from smartcity.cli.main import app

runner = CliRunner()


def test_templates_lists_the_fields_equipment() -> None:
    done = runner.invoke(app, ["agent", "templates", "water_supply"], env={"COLUMNS": "200"})
    assert done.exit_code == 0, done.output
    assert "water-quality-analyser" in done.output
    assert "bay-multifunction-meter" not in done.output


def test_template_writes_a_profile_the_agent_loads(tmp_path: Path) -> None:
    out = tmp_path / "bay-1.yaml"
    done = runner.invoke(
        app,
        [
            "agent",
            "template",
            "bay-multifunction-meter",
            "--site",
            "hoa-khanh-110kv",
            "--device",
            "bay-1",
            "--endpoint",
            "tcp://10.20.0.5:502",
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 0, done.output
    profile = load_profile(out)
    assert (profile.site, profile.device, profile.field) == (
        "hoa-khanh-110kv",
        "bay-1",
        "electricity",
    )
    assert profile.connection.port == 502


def test_bad_deployment_values_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "bay.yaml"
    done = runner.invoke(
        app,
        [
            "agent",
            "template",
            "bay-multifunction-meter",
            "--site",
            "Hoa Khanh",
            "--device",
            "bay-1",
            "--endpoint",
            "tcp://10.20.0.5:502",
            "--out",
            str(out),
        ],
    )
    assert done.exit_code == 2
    assert "NATS subject token" in done.output
    assert not out.exists()
    unknown = runner.invoke(
        app, ["agent", "template", "nope", "--site", "s", "--device", "d", "--endpoint", "x"]
    )
    assert unknown.exit_code == 2
    assert "no template 'nope'" in unknown.output
