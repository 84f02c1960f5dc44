"""Configuration: defaults, YAML, environment, overrides, and errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from smartcity.runtime.config import ConfigError, load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("SMARTCITY_") and key != "SMARTCITY_TEST_STRICT":
            monkeypatch.delenv(key)


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "city.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_describe_the_embedded_city() -> None:
    settings = load_settings()
    assert settings.nats.embedded is True
    assert settings.nats.url is None
    assert settings.nats.streams.telemetry.max_msg_size == 1024 * 1024
    assert settings.logging.level == "INFO"


def test_priority_override_over_env_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(
        tmp_path,
        "nats:\n  port: 4300\n  name: from-file\n  streams:\n    telemetry: {max_bytes: 1000}\n",
    )
    monkeypatch.setenv("SMARTCITY_NATS__PORT", "4400")
    settings = load_settings(path)
    assert settings.nats.port == 4400  # environment beats the file
    assert settings.nats.name == "from-file"
    assert settings.nats.streams.telemetry.max_bytes == 1000
    # a nested override keeps the file's siblings
    settings = load_settings(path, nats={"port": 4500})
    assert settings.nats.port == 4500
    assert settings.nats.streams.telemetry.max_bytes == 1000


def test_config_file_from_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "logging: {level: debug, format: json}\n")
    monkeypatch.setenv("SMARTCITY_CONFIG", str(path))
    settings = load_settings()
    assert settings.logging.level == "DEBUG"
    assert settings.logging.format == "json"


def test_every_problem_is_listed_with_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = write(tmp_path, "nats:\n  prot: 3\n  url: http://x:1\nlogging: {level: loud}\n")
    monkeypatch.setenv("SMARTCITY_GRPC__PORT", "abc")
    with pytest.raises(ConfigError) as info:
        load_settings(path)
    text = str(info.value)
    assert str(path) in text
    assert "nats.prot: unknown key" in text
    assert "nats.url" in text
    assert "not a NATS URL" in text
    assert "grpc.port" in text
    assert "SMARTCITY_GRPC__PORT" in text
    assert "logging.level" in text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nats: [1\n", "invalid YAML"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_unreadable_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(write(tmp_path, text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "absent.yaml")


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path, "")) == load_settings()


def test_settings_are_immutable() -> None:
    settings = load_settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.nats.port = 1  # type: ignore[misc]
