"""Fixtures for the API tests: the generator tool, compiled descriptors, a scratch copy."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "protos.py"
API = ("common", "telemetry", "identity", "records", "monitoring", "alerts")


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("smartcity_tools_protos", TOOL)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def protos() -> ModuleType:
    """``tools/protos.py``, loaded by path: it is a script, not part of the package."""
    return _load_tool()


@pytest.fixture(scope="session")
def descriptors(protos: ModuleType) -> descriptor_pb2.FileDescriptorSet:
    """The API's files compiled with their comments (source info), imports left out."""
    return protos.descriptor_set(protos.DEFAULT_PROTO_DIR, include_source_info=True)


@pytest.fixture
def scratch(tmp_path: Path, protos: ModuleType) -> tuple[Path, Path]:
    """A copy of ``proto/`` and of the generated packages, to break without touching the tree."""
    proto_dir = tmp_path / "proto"
    out_dir = tmp_path / "src"
    shutil.copytree(protos.DEFAULT_PROTO_DIR, proto_dir)
    for name in API:
        shutil.copytree(
            protos.DEFAULT_OUT_DIR / "smartcity" / name,
            out_dir / "smartcity" / name,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return proto_dir, out_dir
