"""``smartcity bench identity`` runs end to end on a small load and prints every figure next
to its ceiling (the figures themselves depend on the machine and are not asserted)."""

from __future__ import annotations

import os
import re
import subprocess
import sys


def test_bench_identity_prints_each_figure_with_its_ceiling() -> None:
    command = ["bench", "identity", "--tokens", "200", "--calls", "400", "--logins", "2"]
    done = subprocess.run(
        [sys.executable, "-m", "smartcity.cli.main", *command],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    for row in (
        "Ed25519 signature check alone (ceiling)",
        "verify a token at first sight",
        "verify the same token again",
        "gRPC unary calls without auth",
        "gRPC unary calls with the auth interceptor",
        "argon2id hashes",
        "logins through the identity service",
    ):
        line = next((line for line in out.splitlines() if row in line), None)
        assert line is not None, f"{row!r} missing from:\n{out}"
        assert re.search(r"\d[\d,.]*", line.split(row)[1]), line
