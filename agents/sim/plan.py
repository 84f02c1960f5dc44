"""What a simulated site is, and the plan of sites one ``smartcity sim many`` serves.

A site is one simulator on its own port, with its own folder (``out``) for what an agent
needs to read it: a substation (:class:`SubstationSite`), an air-quality station
(:class:`AirSite`) or a water station (:class:`WaterSite`). ``sim modbus``, ``sim air`` and
``sim opcua`` make one from their options; a plan file lists several (:func:`load_plan`).
What a site's server would refuse only once it runs is refused here, before anything
listens (:func:`check_site`). Serving them is :mod:`.sites`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from smartcity.runtime.errors import InvalidArgument

__all__ = [
    "AirSite",
    "SimPlan",
    "SiteSpec",
    "SubstationSite",
    "WaterSite",
    "check_site",
    "load_plan",
]

_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"


class _Site(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=_NAME, description="Starts every line the site says.")
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(ge=0, le=65535, description="0 picks a free one.")
    out: Path = Field(description="Folder for the device profile(s) and certificates.")
    seed: int | None = None


class SubstationSite(_Site):
    """A 110/22 kV substation over Modbus TCP (and RTU on ``serial_port``)."""

    kind: Literal["modbus"] = "modbus"
    devices: int = Field(1, ge=1, le=247)
    serial_port: str | None = None
    baudrate: int = Field(19200, gt=0)
    period: float = Field(1.0, ge=0.01)


class AirSite(_Site):
    """An air-quality monitoring station over Modbus TCP."""

    kind: Literal["air"] = "air"
    site: str | None = None
    """The site id its profile publishes under; ``None``: the station's own default."""
    period: float = Field(1.0, ge=0.01)


class WaterSite(_Site):
    """A water station over OPC-UA, Basic256Sha256 (and unsecured with ``allow_none``)."""

    kind: Literal["opcua"] = "opcua"
    allow_none: bool = False


SiteSpec = Annotated[SubstationSite | AirSite | WaterSite, Field(discriminator="kind")]


class SimPlan(BaseModel):
    """The sites one ``smartcity sim many`` serves."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    simulators: list[SiteSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> SimPlan:
        names = [site.name for site in self.simulators]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"site names must differ: {', '.join(twice)} twice")
        ports = [(site.host, site.port) for site in self.simulators if site.port]
        shared = sorted({f"{h}:{p}" for h, p in ports if ports.count((h, p)) > 1})
        if shared:
            raise ValueError(f"each site needs its own port: {', '.join(shared)} twice")
        return self


def load_plan(path: Path) -> SimPlan:
    """The plan in ``path`` (YAML or JSON: ``simulators:``, a list of sites, each with its
    ``kind``: ``modbus``, ``air`` or ``opcua``). Relative ``out`` folders are taken from the
    working directory, as ``--out`` is.

    Raises :class:`InvalidArgument` naming the file and every problem in it.
    """
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise InvalidArgument(f"{path}: cannot read the plan: {exc}") from None
    try:
        plan = SimPlan.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'plan'}: {error['msg']}"
            for error in exc.errors()
        )
        raise InvalidArgument(f"{path}: {problems}") from None
    for spec in plan.simulators:
        try:
            check_site(spec)
        except InvalidArgument as exc:
            raise InvalidArgument(f"{path}: {exc.message}") from None
    return plan


def check_site(spec: SubstationSite | AirSite | WaterSite) -> None:
    """Refuse, before anything listens, what the site's server would refuse only later.

    Raises :class:`InvalidArgument`.
    """
    if isinstance(spec, AirSite):
        from smartcity.agents.profile import ProfileError
        from smartcity.agents.sim.air_quality import DEFAULT_DEVICE, DEFAULT_SITE, station_document

        endpoint = f"tcp://{spec.host}:{spec.port}"
        site = spec.site or DEFAULT_SITE
        try:  # a site id that cannot be a subject token
            station_document(site=site, device=DEFAULT_DEVICE, endpoint=endpoint)
        except ProfileError as exc:
            raise InvalidArgument(f"{spec.name}: {exc}") from None
