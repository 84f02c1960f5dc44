"""The command line, configuration and readiness of every process ``smartcity up`` starts.

Each process is an ordinary command (``smartcity serve monitoring``, ``smartcity agent``,
``smartcity sim many``, ``nats-server``, ...), so what runs under ``up`` is what runs on its
own. A service or an agent gets its settings from a YAML file written for it in
``<data>/config/<name>.yaml`` (its NATS URL and credentials file, its gRPC port, its data
folder, ``auth.mode``); how that file and the child's environment are made is in
:mod:`smartcity.up.child_config`.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from smartcity.runtime.nats_auth.plan import ADMIN_USER, agent_user
from smartcity.runtime.nats_auth.render import AUTHORIZATION_FILE, credentials_path
from smartcity.up.child import ChildSpec
from smartcity.up.child_config import child_environment, nats_settings, write_config
from smartcity.up.plan import Layout, Site
from smartcity.up.ports import Endpoints
from smartcity.up.readiness import GrpcServing, HttpOk, JetStreamServing, LogLine

__all__ = [
    "AIR_PROFILE",
    "SERVICES",
    "SIM",
    "STAGE_AGENTS",
    "STAGE_CONSOLE",
    "STAGE_SERVICES",
    "STAGE_SOURCES",
    "agent_spec",
    "available_commands",
    "console_spec",
    "nats_spec",
    "service_spec",
    "sim_plan",
    "sims_spec",
    "site_ready",
    "streams_command",
]

SERVICES = ("identity", "records", "monitoring", "alerts")
"""Started together; identity's key set makes the others SERVING."""

STAGE_SOURCES, STAGE_SERVICES, STAGE_AGENTS, STAGE_CONSOLE = 0, 1, 2, 3
"""Start order; stopping goes the other way (the console first, NATS and simulators last)."""

AIR_PROFILE = "air-quality-station.yaml"
"""The profile an air station's simulator writes into its folder once it serves."""

SIM = "sim"
"""The one process of every simulated site."""

NATS_SERVER_NAME = "smartcity"
"""As ``smartcity nats`` names it (``nats.name``), so that a data folder's JetStream store
reads the same under either."""


def available_commands() -> set[str]:
    """Every installed ``smartcity`` command, with sub-commands as ``"sim air"``."""
    import typer

    from smartcity.cli.main import app

    def commands(group: object) -> dict[str, object]:
        found = getattr(group, "commands", None)  # a group of commands, as click has it
        return dict(found) if isinstance(found, dict) else {}

    names: set[str] = set()
    for name, command in commands(typer.main.get_command(app)).items():
        names.add(name)
        names.update(f"{name} {sub}" for sub in commands(command))
    return names


def _smartcity(*args: str) -> list[str]:
    return [sys.executable, "-m", "smartcity.cli.main", *args]


def nats_spec(layout: Layout, endpoints: Endpoints, binary: Path) -> ChildSpec:
    """``nats-server`` itself, with JetStream, under the generated authorization: the
    streams are made once it serves, by :func:`streams_command`. (``smartcity nats`` would
    do both, but would stay, a Python process beside the server, for no further work.)"""
    argv = [
        str(binary),
        *("--addr", endpoints.host, "--port", str(endpoints.ports["nats"])),
        *("--server_name", NATS_SERVER_NAME, "--jetstream"),
        *("--store_dir", str(layout.nats_data)),
        *("--config", str(layout.nats_auth / AUTHORIZATION_FILE)),
    ]
    layout.nats_data.mkdir(parents=True, exist_ok=True)
    return ChildSpec(
        "nats",
        argv,
        env=child_environment(),
        ready=JetStreamServing(endpoints.host, endpoints.ports["nats"]),
        stage=STAGE_SOURCES,
    )


def streams_command(layout: Layout, endpoints: Endpoints) -> tuple[list[str], dict[str, str]]:
    """``smartcity streams ensure`` as the admin user: the platform's streams with the
    configured limits (the environment's ``SMARTCITY_NATS__STREAMS__*`` apply), before any
    service or agent uses NATS. Its command line and environment."""
    settings = {
        "nats": {
            "url": endpoints.nats_url,
            "credentials_file": str(credentials_path(layout.nats_auth, ADMIN_USER)),
        }
    }
    config = write_config(layout, "streams", settings)
    return _smartcity("streams", "ensure", "--config", str(config)), child_environment(settings)


def service_spec(name: str, layout: Layout, endpoints: Endpoints) -> ChildSpec:
    settings: dict[str, Any] = {
        "data_dir": str(layout.stores),
        "nats": nats_settings(layout, endpoints, name),
        "grpc": {"host": endpoints.host, "port": endpoints.ports[name]},
    }
    if name == "identity":
        # Identity verifies its callers with its own key ring, not with its announcements.
        settings["identity"] = {
            "http_host": endpoints.host,
            "http_port": endpoints.ports["identity_http"],
            # The console logs people in from this host: identity takes the browser's address
            # it forwards, so that one guesser locks out that guesser and not the console.
            "trusted_proxies": sorted({endpoints.host, "127.0.0.1", "::1"}),
        }
    else:
        settings["auth"] = {"mode": "identity"}
    config = write_config(layout, name, settings)
    return ChildSpec(
        name,
        _smartcity("serve", name, "--config", str(config)),
        env=child_environment(settings),
        ready=GrpcServing(endpoints.address(name)),
        stage=STAGE_SERVICES,
    )


def sim_plan(sites: Sequence[Site], layout: Layout, endpoints: Endpoints) -> dict[str, Any]:
    """The plan of ``smartcity sim many`` for ``sites``: each on its own port, with its own
    folder (profiles, certificates) and seed."""
    simulators = [
        {
            "name": site.id,
            "kind": site.simulator,
            "host": endpoints.host,
            "port": endpoints.sim_port(site),
            "out": str(layout.sim_dir(site.id)),
            "seed": site.seed,
            **({"site": site.id} if site.simulator == "air" else {}),
        }
        for site in sites
    ]
    return {"simulators": simulators}


def sims_spec(sites: Sequence[Site], layout: Layout, endpoints: Endpoints) -> ChildSpec:
    """Every simulated site in one process (``smartcity sim many``): simulated equipment is
    a stand-in for the field, not a part of the city, and one Python process for all of it
    costs a fraction of one each. Ready once every site is; each site says so on its own
    (:func:`site_ready`)."""
    plan = write_config(layout, SIM, sim_plan(sites, layout, endpoints))
    # `smartcity sim many` as `python -m smartcity.cli.sim many`: the same command, with only
    # the `sim` commands loaded rather than every one (a second sooner, some MiB smaller).
    return ChildSpec(
        SIM,
        [sys.executable, "-m", "smartcity.cli.sim", "many", "--plan", str(plan)],
        env=child_environment(),
        ready=LogLine(rf"^{len(sites)} simulators ready$"),
        stage=STAGE_SOURCES,
    )


def site_ready(site: Site) -> LogLine:
    """The line of ``sim many`` that says ``site`` serves and has written its files."""
    return LogLine(rf"^{re.escape(site.id)}: \S.* simulator ready ")


def agent_spec(
    agent_id: str, profiles: list[Path], layout: Layout, endpoints: Endpoints
) -> ChildSpec:
    """An agent for ``profiles`` as NATS user ``agent-<id>``, its disk buffer in its own
    folder. Write commands stay off: an agent's NATS user may not read the IDENTITY stream
    that would tell it whose commands to trust."""
    folder = layout.agent_dir(agent_id)
    settings = {
        "data_dir": str(layout.stores),
        "nats": nats_settings(layout, endpoints, agent_user(agent_id)),
        "agent": {"id": agent_id, "buffer_dir": str(folder / "buffer")},
    }
    config = write_config(layout, f"agent-{agent_id}", settings)
    argv = _smartcity("agent", "--config", str(config))
    for path in profiles:
        argv += ["--profile", str(path)]
    return ChildSpec(
        f"agent-{agent_id}",
        argv,
        env=child_environment(settings),
        ready=LogLine(r"reading \d+ device"),
        stage=STAGE_AGENTS,
    )


def console_spec(layout: Layout, endpoints: Endpoints) -> ChildSpec:
    """The IOC console; its NATS user follows alert events and agent heartbeats. It takes
    its settings from ``SMARTCITY_CONFIG``."""
    settings = {
        "data_dir": str(layout.stores),
        "nats": nats_settings(layout, endpoints, "console"),
        "auth": {"mode": "identity"},
    }
    config = write_config(layout, "console", settings)
    env = child_environment(settings)
    env["SMARTCITY_CONFIG"] = str(config)
    argv = _smartcity(
        *("console", "--host", endpoints.host, "--port", str(endpoints.ports["console"])),
        *("--identity", endpoints.address("identity")),
        *("--monitoring", endpoints.address("monitoring")),
        *("--records", endpoints.address("records")),
        *("--alerts", endpoints.address("alerts")),
    )
    return ChildSpec(
        "console",
        argv,
        env=env,
        ready=HttpOk(f"{endpoints.console_url}/healthz"),
        stage=STAGE_CONSOLE,
    )
