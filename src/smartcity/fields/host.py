"""The loaded fields: what each plugin declared, frozen at load time, and the host that
serves them to a process.

:class:`Field` is one checked plugin: its catalogue, where it came from
(:class:`PluginOrigin`), its derivations and its ``derive`` hook, called on the ingest path
through a pluggy hook caller restricted to that plugin, so that a result stays tied to the
field that produced it. :class:`FieldHost` holds them all by id, ordered by pillar. Both are
built by :func:`smartcity.fields.manager.load_fields`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import pluggy

from smartcity.fields.errors import DeriveError, PluginError
from smartcity.fields.markers import ENTRY_POINT_GROUP
from smartcity.fields.model import (
    AlertRuleTemplate,
    Derivation,
    DeviceProfileTemplate,
    FieldInfo,
    HourlyHistory,
    Kpi,
    Metric,
    Pillar,
    Reading,
    RecordType,
    to_jsonable,
)

_PILLAR_ORDER = {pillar: index for index, pillar in enumerate(Pillar)}


@dataclass(frozen=True, slots=True)
class PluginOrigin:
    """Where a plugin came from, for messages and for ``smartcity fields``."""

    name: str
    """The name it is registered under: its entry-point name."""
    target: str
    """What the entry point names (``package.module``), or the module of a direct plugin."""
    distribution: str | None = None
    version: str | None = None

    def describe(self) -> str:
        if self.distribution is None:
            return f"{self.name!r} (registered directly, {self.target})"
        return (
            f"{self.name!r} (entry point {ENTRY_POINT_GROUP}:{self.name} = {self.target}, "
            f"distribution {self.distribution} {self.version})"
        )


@dataclass(frozen=True, slots=True, eq=False)
class Field:
    """One loaded, checked field: what its plugin declared, frozen at load time."""

    info: FieldInfo
    metrics: Mapping[str, Metric]
    """The metric catalogue by name, in the plugin's order."""
    kpis: tuple[Kpi, ...]
    alert_rules: tuple[AlertRuleTemplate, ...]
    record_types: tuple[RecordType, ...]
    device_profiles: tuple[DeviceProfileTemplate, ...]
    origin: PluginOrigin
    hooks: tuple[str, ...]
    """The hooks the plugin implements."""
    plugin: object = field(repr=False)
    derive_caller: pluggy.HookCaller | None = field(default=None, repr=False)
    derive_inputs: frozenset[str] | None = None
    """The metrics ``derive`` reads (its ``derive_inputs`` hook); ``None`` means all."""
    derivations: Mapping[str, tuple[Derivation, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    """The ``derivations`` hook's declarations, by source metric."""

    @property
    def id(self) -> str:
        return self.info.id

    @property
    def derive_reads_batches(self) -> bool:
        """Whether the plugin's ``derive`` takes ``readings`` at all: one that works on the
        hourly history only (VN_AQI) need not be handed every batch's readings."""
        if self.derive_caller is None:
            return False
        return any("readings" in impl.argnames for impl in self.derive_caller.get_hookimpls())

    @property
    def derive_reads_hourly(self) -> bool:
        """Whether the plugin's ``derive`` takes ``hourly``: the host then calls it once per
        completed hour of each device, with that hour's history."""
        if self.derive_caller is None:
            return False
        return any("hourly" in impl.argnames for impl in self.derive_caller.get_hookimpls())

    @property
    def pillar(self) -> Pillar:
        return self.info.pillar

    def derive(
        self,
        site: str,
        device: str,
        readings: Sequence[Reading],
        hourly: HourlyHistory | None = None,
    ) -> list[Reading]:
        """The field's derived readings for one batch: its derivations applied to each
        reading of their sources, then what its ``derive`` hook returns; ``[]`` when it
        derives nothing.

        ``hourly`` goes with the first batch of the device after an hour boundary (see the
        ``derive`` hook specification). Raises :class:`DeriveError` naming the plugin when
        the hook fails or returns anything but readings of metrics in this field's
        catalogue, and ``TypeError`` when ``hourly`` is not an :class:`HourlyHistory`.
        """
        derived = self._each(readings) if self.derivations else []
        return derived + self.derive_hook(site, device, readings, hourly)

    def derive_hook(
        self,
        site: str,
        device: str,
        readings: Sequence[Reading],
        hourly: HourlyHistory | None = None,
    ) -> list[Reading]:
        """What the ``derive`` hook alone returns, checked (see :meth:`derive`): for a
        caller that applies the derivations itself, as the ingest decoder does."""
        if hourly is not None and not isinstance(hourly, HourlyHistory):
            raise TypeError(f"hourly must be an HourlyHistory or None, not {type(hourly).__name__}")
        derived: list[Reading] = []
        if self.derive_caller is None:
            return derived
        try:
            results = self.derive_caller(site=site, device=device, readings=readings, hourly=hourly)
        except Exception as exc:
            raise DeriveError(
                f"field {self.id!r}: derive() raised {type(exc).__name__}: {exc}"
            ) from exc
        for result in results:
            if not isinstance(result, list | tuple):
                raise DeriveError(
                    f"field {self.id!r}: derive() returned {type(result).__name__}, "
                    "not a list of Reading"
                )
            for reading in result:
                if not isinstance(reading, Reading):
                    raise DeriveError(
                        f"field {self.id!r}: derive() returned a {type(reading).__name__}, "
                        "not a Reading"
                    )
                if reading.metric not in self.metrics:
                    raise DeriveError(
                        f"field {self.id!r}: derive() returned metric {reading.metric!r}, "
                        "which is not in the field's catalogue"
                    )
                derived.append(reading)
        return derived

    def _each(self, readings: Sequence[Reading]) -> list[Reading]:
        """The derivations applied to ``readings`` (see :meth:`Derivation.apply`)."""
        derived = []
        for reading in readings:
            for derivation in self.derivations.get(reading.metric, ()):
                applied = derivation.apply(reading.value, reading.quality, reading.reason)
                if applied is not None:
                    value, quality, reason = applied
                    derived.append(
                        Reading(
                            derivation.metric,
                            float("nan") if value is None else value,
                            self.metrics[derivation.metric].unit,
                            reading.timestamp,
                            quality,
                            reason,
                        )
                    )
        return derived

    def as_dict(self) -> dict[str, Any]:
        """Everything about the field as JSON-compatible data."""
        return {
            **to_jsonable(self.info),
            "plugin": to_jsonable(self.origin),
            "hooks": list(self.hooks),
            "metrics": [to_jsonable(metric) for metric in self.metrics.values()],
            "kpis": to_jsonable(self.kpis),
            "alert_rules": to_jsonable(self.alert_rules),
            "record_types": to_jsonable(self.record_types),
            "device_profiles": to_jsonable(self.device_profiles),
            "derivations": [
                {"metric": item.metric, "source": item.source, "description": item.description}
                for items in self.derivations.values()
                for item in items
            ],
        }


class FieldHost:
    """The loaded fields, by id, ordered by pillar and then id. Immutable once loaded: a
    plugin installed afterwards is seen by the next process, not by this one."""

    def __init__(
        self,
        plugin_manager: pluggy.PluginManager,
        fields: Iterable[Field],
        refused: Iterable[PluginError] = (),
        stop_tracing: Callable[[], None] | None = None,
    ) -> None:
        ordered = sorted(fields, key=lambda item: (_PILLAR_ORDER[item.pillar], item.id))
        self._fields = MappingProxyType({item.id: item for item in ordered})
        self._pm = plugin_manager
        self._refused = tuple(refused)
        self._stop_tracing = stop_tracing

    @property
    def plugin_manager(self) -> pluggy.PluginManager:
        return self._pm

    @property
    def fields(self) -> Mapping[str, Field]:
        return self._fields

    @property
    def refused(self) -> tuple[PluginError, ...]:
        """Plugins left out by a non-strict load (always empty after a strict one)."""
        return self._refused

    def __getitem__(self, field_id: str) -> Field:
        try:
            return self._fields[field_id]
        except KeyError:
            known = ", ".join(self._fields) or "none"
            raise KeyError(f"no field {field_id!r} is loaded (loaded: {known})") from None

    def __contains__(self, field_id: object) -> bool:
        return field_id in self._fields

    def __iter__(self) -> Iterator[Field]:
        return iter(self._fields.values())

    def __len__(self) -> int:
        return len(self._fields)

    def by_pillar(self) -> dict[Pillar, tuple[Field, ...]]:
        """The fields grouped by pillar, pillars in the architecture's order."""
        groups: dict[Pillar, list[Field]] = defaultdict(list)
        for item in self:
            groups[item.pillar].append(item)
        return {pillar: tuple(groups[pillar]) for pillar in Pillar if pillar in groups}

    def derive(
        self,
        field_id: str,
        site: str,
        device: str,
        readings: Sequence[Reading],
        hourly: HourlyHistory | None = None,
    ) -> list[Reading]:
        return self[field_id].derive(site, device, readings, hourly)

    def close(self) -> None:
        """Stop hook tracing, if it was on."""
        if self._stop_tracing is not None:
            self._stop_tracing()
            self._stop_tracing = None
