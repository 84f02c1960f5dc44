"""The committed generated code matches the .proto files, and the check notices when it does not.

``tools/protos.py check`` is what keeps ``src/smartcity/<api>/v1`` honest, so besides running it
on the tree these tests break a scratch copy in the ways a developer would (edit a .proto and
forget to regenerate, delete a .proto, lose a file) and expect each to be named.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "protos.py"


def _run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), *args], capture_output=True, text=True, cwd=ROOT, check=False
    )


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def _reported(problems: list, out_dir: Path) -> dict[str, str]:
    return {p.path.relative_to(out_dir).as_posix(): p.kind for p in problems}


def test_committed_generated_code_is_fresh() -> None:
    done = _run_tool("check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "matches" in done.stdout


def test_check_names_the_file_of_an_edited_proto(protos: ModuleType, scratch) -> None:
    proto_dir, out_dir = scratch
    assert protos.check(proto_dir, out_dir) == []
    _edit(
        proto_dir / "smartcity/telemetry/v1/telemetry.proto",
        "string unit = 3;",
        "string unit_symbol = 3;",
    )

    problems = protos.check(proto_dir, out_dir)

    assert _reported(problems, out_dir) == {
        "smartcity/telemetry/v1/telemetry_pb2.py": "stale",
        "smartcity/telemetry/v1/telemetry_pb2.pyi": "stale",
    }
    pb2 = next(p for p in problems if p.path.name == "telemetry_pb2.py")
    assert '+    name: "unit_symbol"' in pb2.detail
    assert '-    name: "unit"' in pb2.detail

    done = _run_tool("check", "--proto-dir", str(proto_dir), "--out-dir", str(out_dir))
    assert done.returncode == 1
    assert "telemetry_pb2.py: stale" in done.stderr
    assert "python tools/protos.py generate" in done.stderr


def test_check_notices_a_new_rpc_in_the_grpc_module(protos: ModuleType, scratch) -> None:
    proto_dir, out_dir = scratch
    _edit(
        proto_dir / "smartcity/alerts/v1/alerts.proto",
        "  rpc GetRule(GetRuleRequest) returns (GetRuleResponse);",
        "  rpc GetRule(GetRuleRequest) returns (GetRuleResponse);\n"
        "  // Same as GetRule.\n"
        "  rpc FetchRule(GetRuleRequest) returns (GetRuleResponse);",
    )

    problems = protos.check(proto_dir, out_dir)

    reported = _reported(problems, out_dir)
    assert reported["smartcity/alerts/v1/alerts_pb2_grpc.py"] == "stale"
    grpc_problem = next(p for p in problems if p.path.name == "alerts_pb2_grpc.py")
    assert "+path /smartcity.alerts.v1.AlertsService/FetchRule" in grpc_problem.detail


def test_check_reports_missing_and_extra_files(protos: ModuleType, scratch) -> None:
    proto_dir, out_dir = scratch
    (out_dir / "smartcity/records/v1/records_pb2.pyi").unlink()
    (proto_dir / "smartcity/common/v1/extra.proto").write_text(
        'syntax = "proto3";\npackage smartcity.common.v1;\n// Extra.\nmessage Extra {}\n'
    )
    stray = out_dir / "smartcity/monitoring/v1/old_pb2.py"
    stray.write_text("# left over from a deleted .proto\n")

    reported = _reported(protos.check(proto_dir, out_dir), out_dir)

    assert reported == {
        "smartcity/records/v1/records_pb2.pyi": "missing",
        "smartcity/common/v1/extra_pb2.py": "missing",
        "smartcity/common/v1/extra_pb2.pyi": "missing",
        "smartcity/monitoring/v1/old_pb2.py": "extra",
    }


def test_generate_repairs_the_copy_and_removes_a_deleted_api(protos: ModuleType, scratch) -> None:
    proto_dir, out_dir = scratch
    _edit(
        proto_dir / "smartcity/records/v1/records.proto",
        "string reason = 13;",
        "string change_reason = 13;",
    )
    alerts_proto = proto_dir / "smartcity/alerts/v1/alerts.proto"
    alerts_proto.unlink()
    alerts_proto.parent.rmdir()
    alerts_proto.parent.parent.rmdir()
    (out_dir / "smartcity/alerts/v1/__pycache__").mkdir()
    (out_dir / "smartcity/alerts/v1/__pycache__/alerts_pb2.cpython-311.pyc").write_bytes(b"")
    unrelated = out_dir / "smartcity/runtime.py"
    unrelated.write_text('"""Hand-written; the generator must leave it alone."""\n')

    changes = protos.generate(proto_dir, out_dir)

    written = {p.relative_to(out_dir).as_posix() for p in changes.written}
    removed = {p.relative_to(out_dir).as_posix() for p in changes.removed}
    assert written == {
        "smartcity/records/v1/records_pb2.py",
        "smartcity/records/v1/records_pb2.pyi",
    }
    assert removed == {
        "smartcity/alerts/__init__.py",
        "smartcity/alerts/v1/__init__.py",
        "smartcity/alerts/v1/alerts_pb2.py",
        "smartcity/alerts/v1/alerts_pb2.pyi",
        "smartcity/alerts/v1/alerts_pb2_grpc.py",
    }
    assert not (out_dir / "smartcity/alerts").exists()
    assert unrelated.is_file()
    assert protos.check(proto_dir, out_dir) == []
    assert protos.generate(proto_dir, out_dir).written == []  # deterministic: nothing to redo


def test_check_ignores_generator_version_stamps(protos: ModuleType, scratch) -> None:
    """Another grpcio-tools release writes other version numbers; that alone is not stale."""
    proto_dir, out_dir = scratch
    pb2 = out_dir / "smartcity/monitoring/v1/monitoring_pb2.py"
    text = pb2.read_text()
    text = re.sub(r"# Protobuf Python Version: \S+", "# Protobuf Python Version: 9.0.0", text)
    text = re.sub(
        r"(_runtime_version\.Domain\.PUBLIC,\s*)\d+,\s*\d+,\s*\d+,",
        r"\g<1>9,\n    0,\n    0,",
        text,
    )
    pb2.write_text(text)
    grpc_module = out_dir / "smartcity/monitoring/v1/monitoring_pb2_grpc.py"
    _edit(grpc_module, "GRPC_GENERATED_VERSION = '", "GRPC_GENERATED_VERSION = '9.0.0'  # was '")
    pyi = out_dir / "smartcity/monitoring/v1/monitoring_pb2.pyi"
    pyi.write_text("# stub written by another generator release\n" + pyi.read_text())

    assert pb2.read_bytes() != (ROOT / "src/smartcity/monitoring/v1/monitoring_pb2.py").read_bytes()
    assert protos.check(proto_dir, out_dir) == []


def test_a_proto_that_does_not_compile_is_a_clear_error(scratch) -> None:
    proto_dir, out_dir = scratch
    _edit(proto_dir / "smartcity/identity/v1/identity.proto", "string username = 3;", "strin g;")
    before = {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}

    done = _run_tool("generate", "--proto-dir", str(proto_dir), "--out-dir", str(out_dir))

    assert done.returncode == 2
    assert "smartcity/identity/v1/identity.proto" in done.stderr
    assert before == {p: p.read_bytes() for p in out_dir.rglob("*") if p.is_file()}


def test_help_names_both_commands() -> None:
    done = _run_tool("--help")
    assert done.returncode == 0
    assert "generate" in done.stdout
    assert "check" in done.stdout
