"""The profile examples in agents/README.md are real profiles: the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from smartcity.agents.profile import parse_profile

README = Path(__file__).resolve().parents[2] / "agents" / "README.md"


def yaml_blocks() -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), re.DOTALL)


def test_the_modbus_example_is_a_valid_profile() -> None:
    document = yaml.safe_load(yaml_blocks()[0])
    profile = parse_profile(document, "agents/README.md")
    assert len(profile.points) == 6


def test_the_opcua_example_is_valid_once_completed() -> None:
    fragment = yaml.safe_load(yaml_blocks()[1])
    document = {"site": "cau-do", "field": "water_supply", "device": "station-1", **fragment}
    profile = parse_profile(document, "agents/README.md")
    assert profile.security.mode == "SignAndEncrypt"
