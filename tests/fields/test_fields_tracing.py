"""The hook-tracing switch: every hook call goes to the ``smartcity.fields.trace`` logger."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from smartcity.fields import TRACE_LOGGER, Reading, load_fields
from smartcity.fields.validation import CATALOGUE_HOOKS
from smartcity.runtime.config import PluginSettings, load_settings

Install = Callable[..., str]


def hook_calls(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The hook names of the traced calls (pluggy writes ``<hook> [hook]`` per call)."""
    calls = []
    for record in caplog.records:
        assert record.name == TRACE_LOGGER
        first = record.getMessage().strip().splitlines()[0]
        if first.endswith("[hook]") and not first.startswith("finish"):
            calls.append(first.removesuffix("[hook]").strip())
    return calls


@pytest.fixture
def trace_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger=TRACE_LOGGER)
    caplog.handler.addFilter(lambda record: record.name == TRACE_LOGGER)
    return caplog


def test_tracing_logs_every_hook_call(trace_log: pytest.LogCaptureFixture) -> None:
    host = load_fields(trace=True)
    try:
        calls = hook_calls(trace_log)
        # Every catalogue hook, once per field, whether the plugin implements it or not;
        # derive_inputs once per field whose derive declares its inputs.
        assert calls.count("derive_inputs") == 1  # electricity's
        assert len(calls) == len(CATALOGUE_HOOKS) * 16 + 1
        for hook in CATALOGUE_HOOKS:
            assert calls.count(hook) == 16
        finishes = [r for r in trace_log.records if "finish field_info -->" in r.getMessage()]
        assert len(finishes) == 16
        assert any("id='water_supply'" in r.getMessage() for r in finishes)
    finally:
        host.close()


def test_tracing_covers_derive_on_the_hot_path(
    install: Install, good_plugin_source: str, trace_log: pytest.LogCaptureFixture
) -> None:
    install("danang-parking", good_plugin_source, entry_point="parking_guidance")
    host = load_fields(PluginSettings(enabled=["parking_guidance"]), trace=True)
    trace_log.clear()
    now = datetime(2026, 11, 22, tzinfo=UTC)
    host.derive(
        "parking_guidance", "han-market", "gate-2", [Reading("spaces_free", 3, "{space}", now)]
    )
    (call,) = [r.getMessage() for r in trace_log.records if "derive [hook]" in r.getMessage()]
    assert "site: han-market" in call
    assert "device: gate-2" in call

    host.close()
    trace_log.clear()
    host.derive("parking_guidance", "han-market", "gate-2", [])
    assert hook_calls(trace_log) == []


def test_no_trace_unless_asked(trace_log: pytest.LogCaptureFixture) -> None:
    host = load_fields()
    assert hook_calls(trace_log) == []
    host.close()


def test_trace_switch_in_settings_and_environment(
    monkeypatch: pytest.MonkeyPatch, trace_log: pytest.LogCaptureFixture
) -> None:
    host = load_fields(PluginSettings(enabled=["energy"], trace_hooks=True))
    host.close()
    assert hook_calls(trace_log) == list(CATALOGUE_HOOKS)

    trace_log.clear()
    monkeypatch.delenv("SMARTCITY_CONFIG", raising=False)
    monkeypatch.setenv("SMARTCITY_PLUGINS__TRACE_HOOKS", "true")
    monkeypatch.setenv("SMARTCITY_PLUGINS__ENABLED", '["lighting"]')
    host = load_fields(load_settings().plugins)
    host.close()
    assert hook_calls(trace_log) == list(CATALOGUE_HOOKS)


def test_closing_restores_the_trace_loggers_level() -> None:
    logger = logging.getLogger(TRACE_LOGGER)
    before = logger.level
    host = load_fields(PluginSettings(enabled=["energy"]), trace=True)
    assert logger.level == logging.DEBUG
    host.close()
    assert logger.level == before


def test_level_is_restored_only_when_the_last_tracer_closes() -> None:
    logger = logging.getLogger(TRACE_LOGGER)
    before = logger.level
    first = load_fields(PluginSettings(enabled=["energy"]), trace=True)
    second = load_fields(PluginSettings(enabled=["energy"]), trace=True)
    first.close()
    first.close()  # closing twice changes nothing
    assert logger.level == logging.DEBUG, "the second host still traces"
    second.close()
    assert logger.level == before
