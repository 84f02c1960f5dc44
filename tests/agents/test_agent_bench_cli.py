"""``smartcity bench agent`` runs end to end on a small load in a process of its own, as a
user runs it: it prints its progress, then every figure, counted in the stream, with
nothing missing (the figures themselves depend on the machine). Without pyModbusTCP it says
what to install instead of failing halfway."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SMARTCITY = [sys.executable, "-m", "smartcity.cli.main"]


def bench(*options: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*SMARTCITY, "bench", "agent", *options],
        capture_output=True,
        text=True,
        timeout=150,
        env={**os.environ, "COLUMNS": "220", "NO_COLOR": "1", **(env or {})},
    )


def figure(out: str, row: str) -> float:
    match = re.search(rf"{re.escape(row)}\s+│\s+([\d,]+)\s+│", out)
    assert match is not None, out
    return float(match.group(1).replace(",", ""))


def test_the_bench_counts_what_the_stream_holds() -> None:
    done = bench(
        "--devices", "2", "--points", "8", "--poll", "50ms", "--seconds", "1.5", "--warmup", "1"
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "starting 2 pyModbusTCP device(s), each in its own process" in out
    assert re.search(r"measured: agent produced [\d,]+ readings/s", out), out
    assert figure(out, "offered by the devices") == 320
    assert figure(out, "plain pymodbus clients, as fast as the devices answer (ceiling)") > 0
    assert figure(out, "agent: read, GOOD only") > 0
    assert figure(out, "agent: acknowledged by JetStream, distinct sequences") > 0
    assert re.search(r"acknowledged / offered: [\d.]+% \((meets|misses) the 90% target\)", out)
    assert re.search(r"CPU beside the agent in its window \(cores\): devices [\d.]+", out)
    stream = re.search(
        r"stream after drain: [\d,]+ messages, ([\d,]+) readings, ([\d,]+) distinct", out
    )
    assert stream is not None, out
    assert stream.group(1) == stream.group(2)  # nothing stored twice
    assert "none missing" in out


def test_without_pymodbustcp_the_bench_says_what_to_install(tmp_path: Path) -> None:
    hidden = tmp_path / "pyModbusTCP"
    hidden.mkdir()
    (hidden / "__init__.py").write_text("raise ImportError('not installed')\n", "utf-8")
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = bench("--devices", "1", env={"PYTHONPATH": path})
    assert done.returncode == 1
    assert "pyModbusTCP" in done.stderr
    assert "pip install 'smartcity[dev]'" in done.stderr
