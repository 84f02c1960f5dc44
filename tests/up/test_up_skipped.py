"""A command that is not installed is a "skipped" line, not an error; a stop that comes
while the city starts leaves nothing running."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest
from rich.console import Console
from up_support import city_processes

from smartcity.up import processes
from smartcity.up.city import UpOptions, run_city


async def test_missing_commands_are_skipped_and_an_early_stop_cleans_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    installed = processes.available_commands()
    assert {"console", "sim air", "sim modbus"} <= installed
    monkeypatch.setattr(processes, "available_commands", lambda: installed - {"console", "sim air"})
    monkeypatch.setenv("SMARTCITY_ADMIN_PASSWORD", "city-admin-8e1f2a")
    monkeypatch.setenv("SMARTCITY_OPERATOR_PASSWORD", "duty-operator-51c9")
    text = io.StringIO()
    folder = tmp_path / "city"
    stop = asyncio.Event()
    stop.set()  # Ctrl-C right away
    code = await run_city(
        UpOptions(folder, auto_ports=True, faults=False), Console(file=text, width=200), stop
    )
    output = text.getvalue()
    assert code == 1
    assert "son-tra-air              skipped: `smartcity sim air` is not installed" in output
    assert "console                  skipped: `smartcity console` is not installed" in output
    assert "interrupted while starting" in output
    assert "stopped; nothing left running" in output
    city = json.loads((folder / "city.json").read_text())
    assert city["state"] == "stopped"
    assert city["console"]["skipped"] == "`smartcity console` is not installed"
    assert "son-tra-air" not in city["simulators"]
    assert city_processes(folder) == []
    # The accounts were made before anything started, once.
    assert json.loads((folder / "seeded.json").read_text())["accounts"] == [
        "ioc.admin",
        "ioc.operator",
    ]
