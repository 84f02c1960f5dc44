"""Choosing fields with ``plugins.enabled`` / ``plugins.disabled``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from smartcity.fields import FieldHostError, load_fields
from smartcity.runtime.config import PluginSettings, load_settings

Install = Callable[..., str]


@pytest.fixture(autouse=True)
def _no_outside_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SMARTCITY_CONFIG", "SMARTCITY_PLUGINS__ENABLED", "SMARTCITY_PLUGINS__DISABLED"):
        monkeypatch.delenv(name, raising=False)


def test_enabled_loads_only_those() -> None:
    host = load_fields(PluginSettings(enabled=["water_supply", "traffic"]))
    assert [item.id for item in host] == ["traffic", "water_supply"]
    assert not host.plugin_manager.has_plugin("electricity")
    assert host.plugin_manager.is_blocked("electricity")


def test_disabled_leaves_those_out() -> None:
    host = load_fields(PluginSettings(disabled=["tourism", "traffic"]))
    assert len(host) == 14
    assert "tourism" not in host
    assert "traffic" not in host
    assert "transport" in host


def test_a_disabled_broken_plugin_is_never_imported(install: Install) -> None:
    module = install("broken", "raise RuntimeError('never import me')\n", entry_point="broken")
    host = load_fields(PluginSettings(disabled=["broken"]))
    assert len(host) == 16
    assert module not in sys.modules


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            PluginSettings(enabled=["trafic"]),
            "plugins.enabled names 'trafic', but no installed distribution registers",
        ),
        (
            PluginSettings(disabled=["watersupply"]),
            "plugins.disabled names 'watersupply', but no installed distribution registers",
        ),
        (
            PluginSettings(enabled=["traffic"], disabled=["traffic"]),
            "plugin 'traffic' is both in plugins.enabled and plugins.disabled",
        ),
    ],
    ids=["enabled-typo", "disabled-typo", "both"],
)
def test_selection_mistakes_are_refused(settings: PluginSettings, expected: str) -> None:
    with pytest.raises(FieldHostError) as excinfo:
        load_fields(settings)
    message = str(excinfo.value)
    assert expected in message
    assert "installed field plugins: citizen_services, disaster," in message


def test_selection_from_environment_goes_through_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTCITY_PLUGINS__ENABLED", '["energy", "lighting"]')
    host = load_fields(load_settings().plugins)
    assert [item.id for item in host] == ["energy", "lighting"]


def test_selection_from_a_config_file(tmp_path: Path) -> None:
    path = tmp_path / "city.yaml"
    path.write_text("plugins:\n  disabled: [tourism]\n", encoding="utf-8")
    host = load_fields(load_settings(path).plugins)
    assert "tourism" not in host
    assert len(host) == 15
