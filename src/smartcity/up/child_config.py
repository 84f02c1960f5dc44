"""The configuration file and the environment of a child of ``smartcity up``.

A service or an agent gets its settings from a YAML file written for it in
``<data>/config/<name>.yaml`` (its NATS URL and credentials file, its gRPC port, its data
folder, ``auth.mode``): the file documents the process, and it can be started by hand with
the same ``--config``. Environment variables ``SMARTCITY_<SECTION>__<KEY>`` would override
the file, so the ones for keys the file sets are taken out of the child's environment;
the rest (``SMARTCITY_LOGGING__FORMAT=json``, ...) reach every process as usual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from smartcity.runtime.config import ENV_PREFIX
from smartcity.runtime.nats_auth.render import credentials_path
from smartcity.up.plan import Layout
from smartcity.up.ports import Endpoints

__all__ = ["child_environment", "nats_settings", "write_config"]

_SECRETS = ("SMARTCITY_ADMIN_PASSWORD", "SMARTCITY_OPERATOR_PASSWORD", "SMARTCITY_PASSWORD")


def _flatten(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    keys: list[tuple[str, ...]] = []
    for key, value in document.items():
        if isinstance(value, Mapping):
            keys += _flatten(value, (*prefix, key))
        else:
            keys.append((*prefix, key))
    return keys


def child_environment(settings: Mapping[str, Any] | None = None) -> dict[str, str]:
    """The supervisor's environment for a child whose configuration file sets ``settings``:
    without the variables that would override them, the configuration file's name and the
    seeded accounts' passwords; output unbuffered, so that a log shows what just happened."""
    drop = {"SMARTCITY_CONFIG", *_SECRETS}
    for key in _flatten(settings or {}):
        drop.add(ENV_PREFIX + "__".join(key).upper())
    if settings and "nats" in settings:  # credentials_file excludes user and password
        drop.update(f"{ENV_PREFIX}NATS__{key}" for key in ("USER", "PASSWORD", "CREDENTIALS_FILE"))
    env = {name: value for name, value in os.environ.items() if name not in drop}
    env["PYTHONUNBUFFERED"] = "1"
    env.setdefault("COLUMNS", "160")  # one ready line, one line in the log
    return env


def write_config(layout: Layout, name: str, settings: Mapping[str, Any]) -> Path:
    path = layout.config / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(dict(settings), sort_keys=False, allow_unicode=True)
    path.write_text(
        f"# Settings of {name} under `smartcity up`, rewritten at every start.\n{text}",
        encoding="utf-8",
    )
    return path


def nats_settings(layout: Layout, endpoints: Endpoints, user: str) -> dict[str, Any]:
    """The ``nats`` section of a child that connects as ``user``."""
    return {
        "url": endpoints.nats_url,
        "credentials_file": str(credentials_path(layout.nats_auth, user)),
        "reconnect_wait_seconds": 0.5,
    }
