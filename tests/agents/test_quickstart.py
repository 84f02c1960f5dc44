"""agents/README.md's "Quick start on a laptop", run exactly as written.

The ```sh block of that section is taken from the README and its commands are run one by one
as processes, from an empty temporary folder (they write ``.smartcity/...`` relative to it),
with the virtualenv's ``bin`` first on ``PATH`` and no ``SMARTCITY_*`` variables set.

The only change made to the commands: the port numbers 4222 and 5020 are replaced by free
ports, because a system NATS already listens on 4222 on this machine and on CI.

* A background command (``... &``) is started, and the next line runs once it has said it is
  ready, as it does for someone reading the terminal; it is stopped at the end with SIGINT
  (killed only if it does not stop) and must exit 0.
* A foreground command must exit 0, except the last, ``smartcity agent ...``, which runs
  until ``smartcity streams status --json`` shows its readings acknowledged by JetStream (the
  ``TELEMETRY`` stream holds messages); it is then stopped with SIGINT and must exit 0, and
  its output must not show a missing stream.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from support import eventually

README = Path(__file__).resolve().parents[2] / "agents" / "README.md"
SECTION = "## Quick start on a laptop"
PORTS = ("4222", "5020")
STOP_WITHIN = 30.0
pytestmark = pytest.mark.slow


@dataclass
class Step:
    argv: list[str]
    background: bool
    line: str


def quick_start_block() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION) :]
    match = re.search(r"```sh\n(.*?)```", section, re.DOTALL)
    assert match, f"no ```sh block under {SECTION!r} in {README}"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def steps(block: str) -> list[Step]:
    for port in PORTS:
        assert re.search(rf"\b{port}\b", block), f"the quick start no longer uses port {port}"
        block = re.sub(rf"\b{port}\b", str(free_port()), block)
    found = []
    for line in block.splitlines():
        argv = shlex.split(line, comments=True)
        if not argv:
            continue
        background = argv[-1] == "&"
        found.append(Step(argv[:-1] if background else argv, background, line.strip()))
    return found


def environment() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SMARTCITY_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


class Running:
    """A started command, its output in a file."""

    def __init__(self, step: Step, cwd: Path, env: dict[str, str], index: int) -> None:
        self.step = step
        self.output = cwd / f"step-{index}.log"
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                step.argv,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
            )

    def text(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def said_ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(
                f"`{self.step.line}` exited with {self.process.returncode}:\n{self.text()}"
            )
        return "ready" in self.text().lower()

    async def stop(self) -> int:
        """SIGINT, then wait; killed (and reported as such) only if it does not stop."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        try:
            return await asyncio.wait_for(asyncio.to_thread(self.process.wait), STOP_WITHIN)
        except TimeoutError:
            self.process.kill()
            await asyncio.to_thread(self.process.wait)
            return -signal.SIGKILL


async def acknowledged_readings(nats_url: str, cwd: Path, env: dict[str, str]) -> bool:
    """True once `smartcity streams status --json` shows messages in TELEMETRY."""
    process = await asyncio.create_subprocess_exec(
        "smartcity",
        "streams",
        "status",
        "--json",
        "--nats",
        nats_url,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, _ = await process.communicate()
    try:
        document = json.loads(out)
    except json.JSONDecodeError:
        return False
    telemetry = next(s for s in document["streams"] if s["name"] == "TELEMETRY")
    return telemetry["exists"] and telemetry["messages"] > 0


async def test_the_quick_start_works_as_written(tmp_path: Path) -> None:
    *setup, last = steps(quick_start_block())
    assert last.argv[:2] == ["smartcity", "agent"], last.line
    assert not last.background
    nats_url = last.argv[last.argv.index("--nats") + 1]
    env = environment()
    background: list[Running] = []
    agent: Running | None = None
    try:
        for index, step in enumerate(setup):
            if step.background:
                running = Running(step, tmp_path, env, index)
                background.append(running)
                await eventually(running.said_ready, within=60, what=f"`{step.line}` ready")
            else:
                done = await asyncio.to_thread(
                    subprocess.run,
                    step.argv,
                    cwd=tmp_path,
                    env=env,
                    capture_output=True,
                    text=True,
                    timeout=120,
                )
                assert done.returncode == 0, f"`{step.line}`:\n{done.stdout}{done.stderr}"

        agent = Running(last, tmp_path, env, len(setup))
        await eventually(
            lambda: acknowledged_readings(nats_url, tmp_path, env),
            within=60,
            interval=0.5,
            what="readings acknowledged by JetStream in the TELEMETRY stream",
        )
        assert agent.process.poll() is None, agent.text()
        code = await agent.stop()
        output = agent.text()
        assert code == 0, f"`{last.line}` exited with {code}:\n{output}"
        assert "NoStreamResponseError" not in output
        assert "no JetStream stream captures" not in output
    finally:
        if agent is not None and agent.process.poll() is None:
            await agent.stop()
        codes = [await running.stop() for running in reversed(background)]
    for running, code in zip(reversed(background), codes, strict=True):
        assert code == 0, f"`{running.step.line}` exited with {code}:\n{running.text()}"
