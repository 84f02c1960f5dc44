"""The device profiles of the city's agents.

A simulated substation or water station is read with its field plugin's ready profile
(``sim-substation-bay``, ``sim-water-station``), which publishes under the field's metric
names, so that monitoring stores GOOD readings and the field's rules apply; the deployment
fills in the site, the device and the simulator's endpoint, as ``smartcity agent template``
does. The air-quality station is read with the profile its simulator writes, under this
city's site and device ids. Every profile is checked like any other before an agent gets it,
and written to ``<data>/agents/<site>/<device>.yaml``.

``--profiles DIR`` adds real devices: ``DIR/<agent-id>/*.yaml`` is one agent per folder,
``DIR/*.yaml`` one agent per site, the rule of ``smartcity identity nats-config``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from smartcity.runtime.errors import InvalidArgument
from smartcity.runtime.nats_auth.plan import AgentPlan, DeviceRef
from smartcity.up.plan import Layout, Site

if TYPE_CHECKING:
    from smartcity.fields import FieldHost

__all__ = [
    "AgentFiles",
    "external_agents",
    "installed_fields",
    "planned_devices",
    "simulated_profile",
    "write_profile",
]


@dataclass(frozen=True)
class AgentFiles:
    """An agent to start: its id, its devices (for the NATS authorization) and its files."""

    id: str
    devices: tuple[DeviceRef, ...]
    profiles: tuple[Path, ...]

    @property
    def plan(self) -> AgentPlan:
        return AgentPlan(self.id, self.devices)


@functools.cache
def installed_fields() -> FieldHost:
    """The installed field plugins, loaded once (loading checks every plugin in full)."""
    from smartcity.fields import load_fields

    return load_fields()


def _known_fields() -> list[str]:
    return [field.id for field in installed_fields()]


def simulated_profile(site: Site, layout: Layout, endpoint: str) -> dict[str, Any]:
    """The profile document of ``site``'s device, read from its simulator at ``endpoint``.

    Raises :class:`InvalidArgument` when the plugin template or the simulator's own
    profile is missing or does not fit the site.
    """
    if site.template is not None:
        found = [
            template
            for field in installed_fields()
            if field.id == site.field
            for template in field.device_profiles
            if template.name == site.template
        ]
        if not found:
            raise InvalidArgument(
                f"{site.id}: the {site.field} plugin brings no device profile {site.template!r}"
            )
        document = found[0].complete(
            site=site.id, field=site.field, device=site.device, endpoint=endpoint
        )
    else:
        from smartcity.up.processes import AIR_PROFILE

        written = layout.sim_dir(site.id) / AIR_PROFILE
        try:
            document = yaml.safe_load(written.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise InvalidArgument(f"{site.id}: cannot read {written}: {exc}") from None
        if not isinstance(document, dict):
            raise InvalidArgument(f"{written}: not a device profile")
        if document.get("field") != site.field:
            raise InvalidArgument(
                f"{written}: a device of field {document.get('field')!r}, not {site.field!r}"
            )
        document.update(site=site.id, device=site.device)
    security = document.get("security")
    if isinstance(security, dict) and security.get("policy") != "None":
        # The simulator made the agent's certificate and trusts it; the agent trusts the
        # station's certificate, which the simulator puts in trusted-servers/.
        sim = layout.sim_dir(site.id)
        security.update(
            cert=str(sim / "certs" / "agent.der"),
            key=str(sim / "certs" / "agent.pem"),
            trusted_servers=str(sim / "trusted-servers"),
        )
    return document


def write_profile(site: Site, layout: Layout, document: dict[str, Any]) -> AgentFiles:
    """Check ``document`` as the agent will, then write it for ``site``'s agent."""
    from smartcity.agents.profile import ProfileError, parse_profile

    try:
        profile = parse_profile(document, f"{site.id} device profile", known_fields=_known_fields())
    except ProfileError as exc:
        raise InvalidArgument(str(exc)) from None
    path = layout.agent_dir(site.id) / f"{site.device}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    header = f"# {site.name}: written by `smartcity up` at every start.\n"
    path.write_text(
        header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100),
        encoding="utf-8",
    )
    ref = DeviceRef(profile.field, profile.site, profile.device)
    return AgentFiles(site.id, (ref,), (path,))


def planned_devices(site: Site) -> AgentFiles:
    """``site``'s agent as the NATS authorization needs it, before its profile exists."""
    return AgentFiles(site.id, (DeviceRef(site.field, site.id, site.device),), ())


def external_agents(folder: Path) -> list[AgentFiles]:
    """The agents of a folder of real device profiles (see the module docstring).

    Raises :class:`InvalidArgument` listing every profile that cannot be loaded.
    """
    from smartcity.agents.profile import ProfileError, load_profile
    from smartcity.cli.identity import agents_from_profiles

    plans = agents_from_profiles(folder)
    files: dict[str, list[Path]] = {plan.id: [] for plan in plans}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if path.suffix not in (".yaml", ".yml") or not path.is_file() or len(relative.parts) > 2:
            continue
        if len(relative.parts) == 2:
            files[relative.parts[0]].append(path.absolute())
            continue
        try:
            site = load_profile(path).site
        except ProfileError as exc:  # checked once already: only a file changed meanwhile
            raise InvalidArgument(str(exc)) from None
        files[site].append(path.absolute())
    return [AgentFiles(plan.id, plan.devices, tuple(files[plan.id])) for plan in plans]
