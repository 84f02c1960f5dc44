"""``smartcity bench alerts`` runs end to end on a small load in a process of its own, as a
user runs it: every probe's event arrives, and each figure is printed next to the raw NATS
round trip of the same run (the figures themselves depend on the machine)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.slow


def test_the_bench_times_every_probe() -> None:
    command = ["bench", "alerts", "--rate", "800", "--rules", "16", "--seconds", "1.5"]
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli.main", *command],
        capture_output=True,
        text=True,
        timeout=100,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    raw = re.search(r"raw NATS: JetStream publish -> subscriber \(ceiling\)\s+│\s+([\d.]+)", out)
    alert = re.search(
        r"reading published -> AlertEvent received\s+│\s+([\d.]+)\s+│\s+([\d.]+)\s+│\s+(\d+)", out
    )
    assert raw is not None, out
    assert alert is not None, out
    assert float(raw.group(1)) > 0
    assert int(alert.group(3)) >= 10, "probes timed"
    evaluations = re.search(r"rule evaluations/s: ([\d,]+) over the window", out)
    assert evaluations is not None, out
    assert int(evaluations.group(1).replace(",", "")) > 0
    assert "probes lost: 0" in out
