"""The distribution installs one import package, ``smartcity``, with the folders mapped in.

Builds the real wheel (as ``pip install .`` would) and installs it into a target folder, so
a mistake in the folder mapping shows up here and not on a user's machine.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AREAS = ("services", "agents", "plugins", "operators")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("smartcity-*.whl")
    return built


def test_only_top_level_package_is_smartcity(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    top = {
        name.split("/", 1)[0]
        for name in names
        if not name.split("/", 1)[0].endswith((".dist-info", ".data"))
    }
    assert top == {"smartcity"}
    for area in AREAS:
        assert f"smartcity/{area}/__init__.py" in names, f"{area}/ is not mapped into smartcity"
    assert "smartcity/py.typed" in names
    assert "smartcity/runtime/config.py" in names
    for api in ("common", "telemetry", "identity", "records", "monitoring", "alerts"):
        assert f"smartcity/{api}/v1/{api}_pb2.py" in names
        assert f"smartcity/{api}/v1/{api}_pb2.pyi" in names
    for service in ("identity", "records", "monitoring", "alerts"):
        assert f"smartcity/{service}/v1/{service}_pb2_grpc.py" in names
    assert "smartcity/plugins/electricity.py" in names
    # data files the code opens at run time
    assert "smartcity/services/monitoring/store/migrations/sqlite/0001_initial.sql" in names
    assert "smartcity/services/monitoring/store/migrations/postgres/0001_initial.sql" in names
    assert "smartcity/agents/sim/profiles/substation.yaml" in names
    assert "smartcity/plugins/profiles/electricity/bay-multifunction-meter.yaml" in names


def test_entry_points_declare_cli_and_fields(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        (entry_points,) = [n for n in archive.namelist() if n.endswith("entry_points.txt")]
        text = archive.read(entry_points).decode()
    assert "smartcity = smartcity.cli.main:app" in text
    assert "[smartcity.fields]" in text
    fields = text.split("[smartcity.fields]", 1)[1].split("\n[", 1)[0]
    declared = [line for line in fields.splitlines() if "=" in line]
    assert len(declared) == 16


def test_installed_wheel_imports_mapped_areas(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import smartcity, smartcity.services, smartcity.plugins, smartcity.agents, "
        "smartcity.operators;"
        "print(smartcity.__file__);print(smartcity.services.__file__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"},
        check=True,
        capture_output=True,
        text=True,
    )
    root_file, services_file = done.stdout.split()
    assert root_file.startswith(str(target))
    assert services_file.startswith(str(target))
