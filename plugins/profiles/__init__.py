"""Ready device profiles of the city's fields, kept as YAML files beside the plugins.

A template is written exactly as an engineer writes a device profile (docs/architecture.md,
"Device profiles"), less what only the deployment knows: ``site``, ``device`` and
``endpoint``. Kept as YAML rather than as Python literals, the file in the repository, with
the comments on its register map, is the file an engineer would have written by hand, and
what :meth:`~smartcity.fields.DeviceProfileTemplate.complete` hands back reads the same.

Each field has a sub-package here (``profiles/<field>/``) holding one ``<name>.yaml`` per
template: the file name is the template's name, and the file's ``description`` is both the
template's and the completed profile's. The files are package data read through
:mod:`importlib.resources`, so they load the same from a checkout, an editable install and
a wheel. A plugin loads its templates when it is imported, so that its ``device_profiles``
hook stays free of I/O as the host requires.
"""

from __future__ import annotations

from importlib import resources
from importlib.resources.abc import Traversable
from typing import Any

import yaml

from smartcity.fields import DeviceProfileTemplate

SUFFIX = ".yaml"
DEPLOYMENT_KEYS = ("site", "device", "endpoint")
"""What a template leaves to the deployment (the site, the device and where it listens)."""


def load(field_id: str) -> tuple[DeviceProfileTemplate, ...]:
    """The templates shipped for ``field_id`` (the sub-package of that name), by file name."""
    return templates_in(resources.files(f"{__name__}.{field_id}"))


def templates_in(folder: Traversable) -> tuple[DeviceProfileTemplate, ...]:
    """The templates of the ``*.yaml`` files in ``folder``, by file name.

    Raises ``ValueError`` naming the file for a file that is not valid YAML, is not a
    mapping, has no description, fixes a deployment key or is not a template; the host then
    refuses the plugin with that message rather than load a field with a template missing.
    """
    entries = sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(SUFFIX)),
        key=lambda entry: entry.name,
    )
    return tuple(_template(entry) for entry in entries)


def _template(entry: Traversable) -> DeviceProfileTemplate:
    source = str(entry)
    try:
        data: Any = yaml.safe_load(entry.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{source}: invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{source}: a device profile template is one mapping")
    fixed = [key for key in DEPLOYMENT_KEYS if key in data]
    if fixed:
        raise ValueError(f"{source}: a template leaves {', '.join(fixed)} to the deployment")
    description = data.get("description")
    if not isinstance(description, str) or not description.strip():
        raise ValueError(f"{source}: description is missing")
    try:
        return DeviceProfileTemplate(
            name=entry.name.removesuffix(SUFFIX), description=description, profile=data
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None
