"""The examples of README.md work as written: the configuration file loads, every command of
the command table answers ``--help``, and the set-up line lists the sixteen fields. Also the
device profile example of docs/architecture.md, which the README links to.

When one of these fails, the README is what is wrong: fix the example, not this test.
"""

from __future__ import annotations

import os
import re
import shlex
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from smartcity.agents.profile import ModbusDevice, OpcuaDevice, parse_profile
from smartcity.cli.main import app
from smartcity.runtime.config import ConfigError, load_settings

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def section(path: Path, title: str) -> str:
    """The text under the ``## title`` heading of ``path``, up to the next such heading."""
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match is not None, f"{path.name} has no section {title!r}"
    return match.group(1)


def fenced(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.M | re.S)


def without_smartcity_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing of the developer's own SMARTCITY_* environment leaks into the examples."""
    for name in list(os.environ):
        if name.startswith("SMARTCITY_"):
            monkeypatch.delenv(name)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    without_smartcity_environment(monkeypatch)
    return CliRunner(env={"COLUMNS": "200"})


# -- configuration ---------------------------------------------------------------------------


def leaves(value: Any, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    if isinstance(value, dict):
        return [leaf for key, item in value.items() for leaf in leaves(item, (*path, key))]
    return [(path, value)]


def setting(dumped: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        dumped = dumped[key]
    return dumped


def same(loaded: Any, written: Any) -> bool:
    """Equal, except that text settings may be normalised in case (``info`` -> ``INFO``)."""
    if isinstance(loaded, str) and isinstance(written, str):
        return loaded.casefold() == written.casefold()
    return loaded == written


def configuration_example() -> str:
    (block,) = fenced(section(README, "Configuration"), "yaml")
    return block


def test_the_configuration_example_loads_with_every_key_as_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_smartcity_environment(monkeypatch)
    example = configuration_example()
    path = tmp_path / "smartcity.yaml"
    path.write_text(example, encoding="utf-8")
    dumped = load_settings(path).model_dump(mode="json")
    written = leaves(yaml.safe_load(example))
    assert len(written) >= 10
    for key, value in written:
        assert same(setting(dumped, key), value), ".".join(key)


def test_the_environment_examples_override_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_smartcity_environment(monkeypatch)
    path = tmp_path / "smartcity.yaml"
    path.write_text(configuration_example(), encoding="utf-8")
    examples = re.findall(r"`(SMARTCITY_[A-Z_]+)=([^`]+)`", section(README, "Configuration"))
    assert len(examples) >= 2
    for name, value in examples:
        monkeypatch.setenv(name, value)
    dumped = load_settings(path).model_dump(mode="json")
    for name, value in examples:
        key = tuple(name.removeprefix("SMARTCITY_").lower().split("__"))
        assert same(setting(dumped, key), value), name


def test_an_unknown_key_names_the_file_the_key_and_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_smartcity_environment(monkeypatch)
    path = tmp_path / "smartcity.yaml"
    path.write_text(configuration_example().replace("url:", "ulr:", 1), encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(path)
    message = str(refused.value)
    assert str(path) in message
    assert "nats.ulr: unknown key" in message
    assert "SMARTCITY_NATS__ULR" in message


# -- the command table -----------------------------------------------------------------------


def table_commands() -> list[tuple[tuple[str, ...], tuple[str, ...]]]:
    """``(sub-command path, options named)`` for every command in the README's table, e.g.
    ``smartcity agent check --profile FILE [--orders]`` -> (agent, check), (--profile,
    --orders). A cell may name several commands; the later ones may leave out ``smartcity``."""
    text = section(README, "Set up")
    table = re.search(r"^\| command \| what it does \|\n\|[-|]+\|\n((?:\|.*\n?)+)", text, re.M)
    assert table is not None, "README.md's command table is missing"
    commands = []
    for row in table.group(1).splitlines():
        cell = row.split("|")[1]
        for example in re.findall(r"`([^`]+)`", cell):
            words = example.split()
            if words[0] == "smartcity":
                words = words[1:]
            path: list[str] = []
            for word in words:
                if not re.fullmatch(r"[a-z][a-z0-9-]*", word):
                    break
                path.append(word)
            options = [w.strip("[]") for w in words if w.strip("[").startswith("--")]
            commands.append((tuple(path), tuple(options)))
    return commands


COMMANDS = table_commands()


def test_the_table_lists_the_commands() -> None:
    assert len(COMMANDS) >= 15
    assert all(path for path, _ in COMMANDS)


@pytest.mark.parametrize(
    ("path", "options"), COMMANDS, ids=[" ".join(path) for path, _ in COMMANDS]
)
def test_every_command_in_the_table_answers_help(
    runner: CliRunner, path: tuple[str, ...], options: tuple[str, ...]
) -> None:
    result = runner.invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    for option in options:
        assert option in result.output, f"smartcity {' '.join(path)} has no {option}"


# -- the set-up line -------------------------------------------------------------------------


def set_up_lines() -> list[str]:
    blocks = fenced(section(README, "Set up"), "sh")
    return [line for block in blocks for line in block.splitlines()]


def test_the_first_command_installs_and_starts_the_city(runner: CliRunner) -> None:
    # `smartcity up` itself is run end to end by tests/up/test_up_city.py; here, that the
    # README's first command is that one, as a newcomer types it.
    first = set_up_lines()[0]
    assert "pip install ." in first
    program, *arguments = shlex.split(first.split("&&")[-1])
    assert Path(program).name == "smartcity"
    assert arguments == ["up"]
    result = runner.invoke(app, [*arguments, "--help"])
    assert result.exit_code == 0, result.output
    assert "--ports" in result.output


def test_the_second_command_installs_the_development_tools_and_runs_the_tests() -> None:
    second = set_up_lines()[1]
    assert "pip install -e '.[dev]'" in second
    assert second.split("&&")[-1].split() == [".venv/bin/python", "-m", "pytest"]
    run = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert second.strip() in run, "CI runs the README's test command verbatim"


def test_the_fields_line_lists_the_sixteen_fields(runner: CliRunner) -> None:
    (line,) = [line for line in set_up_lines() if line.split()[-1:] == ["fields"]]
    program, *arguments = shlex.split(line)
    assert Path(program).name == "smartcity"
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    ours = [ep.name for ep in entry_points(group="smartcity.fields") if ep.dist.name == "smartcity"]
    assert len(ours) == 16
    assert "16 smart fields" in result.output
    listed = {row.split("│")[2].strip() for row in result.output.splitlines() if "│" in row}
    assert set(ours) <= listed


def test_the_screenshot_it_shows_is_in_the_repository() -> None:
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", section(README, "Set up"))
    assert images
    for image in images:
        data = (ROOT / image).read_bytes()
        assert data.startswith(b"\x89PNG"), image


# -- docs/architecture.md --------------------------------------------------------------------


def test_the_architecture_profile_example_is_a_valid_profile_both_ways() -> None:
    (block,) = fenced(section(ARCHITECTURE, "Device profiles"), "yaml")
    modbus = yaml.safe_load(block)
    assert isinstance(parse_profile(modbus, "docs/architecture.md"), ModbusDevice)

    # The comments beside it are the same device over OPC-UA.
    commented = [line.split("#", 1)[1] for line in block.splitlines() if "#" in line]
    assert commented[0].strip() == "OPC-UA instead:"
    opcua = yaml.safe_load("\n".join(line[3:] for line in commented[1:]))
    opcua = {key: modbus[key] for key in ("site", "field", "device")} | opcua
    assert isinstance(parse_profile(opcua, "docs/architecture.md"), OpcuaDevice)
