"""Every hook a field plugin may implement: the whole contract between a field and the core.

A field plugin is a module (or any object) registered under the ``smartcity.fields``
entry-point group. Its hook implementations carry ``@smartcity.fields.hookimpl`` and take
only the arguments they need, by the names given here; pluggy refuses an implementation
whose name or arguments are not specified below.

The catalogue hooks (``field_info`` … ``device_profiles``) are called once per plugin, by
:func:`smartcity.fields.load_fields`, when a process starts. Their results are checked and
frozen into the registry, so they must be pure and cheap: no I/O, no network, the same
answer every time. A plugin implements ``field_info`` and whichever of the others it has
something to say in; an unimplemented catalogue hook means "none".

``derivations`` is a catalogue hook too, but what it declares runs on the ingest path, once
per reading of each derivation's source metric. ``derive`` runs on the ingest path, once per
telemetry batch, through :meth:`smartcity.fields.Field.derive`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from smartcity.fields.markers import hookspec
from smartcity.fields.model import (
    AlertRuleTemplate,
    Derivation,
    DeviceProfileTemplate,
    FieldInfo,
    HourlyHistory,
    Kpi,
    Metric,
    Reading,
    RecordType,
)


@hookspec
def field_info() -> FieldInfo:
    """Identify the field: its id, pillar, title and description. Required.

    The id must equal the entry-point name the plugin is registered under: that name is
    what operators enable or disable, and the id is the ``<field>`` token of NATS subjects,
    so letting them differ would let ``enabled: [x]`` switch on a field publishing as ``y``.

    Called once per plugin by the host at load time.
    """


@hookspec
def metrics() -> list[Metric]:
    """Return the field's metric catalogue: every quantity its devices publish or its
    ``derive`` computes, with unit, plausible range and kind. Names are unique within the
    field. It is what the services check readings against: a reading outside its metric's
    range is kept with bad quality, never dropped.

    Called once per plugin by the host at load time.
    """


@hookspec
def kpis() -> list[Kpi]:
    """Return the field's KPIs, each computed from metrics of this field's catalogue by
    the monitoring service over the KPI's window. Every field declares at least one: a
    field with nothing to measure itself against has no place on the IOC's board.

    Called once per plugin by the host at load time.
    """


@hookspec
def alert_rules() -> list[AlertRuleTemplate]:
    """Return the default alert rules of the field, on metrics of its own catalogue, with
    the regulation each limit comes from: what the alerts service starts from for every
    device of the field, before the city's own overrides.

    Called once per plugin by the host at load time.
    """


@hookspec
def record_types() -> list[RecordType]:
    """Return the record types this field owns (a health record, a feedback ticket, …),
    each with the JSON Schema the records service validates every version against and the
    access rule it enforces. Names are unique across all fields.

    Called once per plugin by the host at load time.
    """


@hookspec
def device_profiles() -> list[DeviceProfileTemplate]:
    """Return ready device profiles for the field's common equipment (a substation bay
    meter, a water-quality analyser), so that commissioning a device means filling in its
    site and endpoint. Every point is a metric of this field, in the metric's unit.

    Called once per plugin by the host at load time; used by the CLI and the operator.
    """


@hookspec
def derivations() -> list[Derivation]:
    """Declare metrics that are a function of one reading of another metric (optional).

    For each :class:`Derivation`, the host computes ``metric`` from every reading of
    ``source`` that has a value, with the source's timestamp, quality and reason, and
    judges it against ``metric``'s catalogue entry; a bad source reading gives nothing.
    Both metrics must be in this field's catalogue. Prefer this to ``derive`` for any
    value that depends on one reading: the host applies it without building a
    :class:`Reading` on either side, an order of magnitude cheaper per reading.
    """


@hookspec
def derive(
    site: str, device: str, readings: Sequence[Reading], hourly: HourlyHistory | None
) -> list[Reading]:
    """Compute derived readings from one batch of this field's telemetry.

    ``readings`` is one batch from ``device`` at ``site`` (the subject's tokens), in the
    order the device produced them. Return the extra readings (for example the voltage
    unbalance from three phase voltages), each of a metric in this field's catalogue;
    return an empty list when there is nothing to derive. Readings of bad quality must not
    feed a good derived value.

    ``hourly`` is ``None`` in those per-batch calls. An implementation that takes
    ``hourly`` is also called once per completed hour of each device that reported in that
    hour, with ``readings`` empty and ``hourly`` holding the device's hourly means (of GOOD
    readings) over the last :attr:`HourlyHistory.HOURS` hours, ending with the completed
    hour, for values defined on hourly means (VN_AQI). That call comes only once the whole
    hour is stored (also when a backlog is replayed after an outage), and what it returns
    is stored once per device and hour however many service replicas run; it is
    timestamped at ``hourly.hour_end``. An implementation that needs no history leaves the
    argument out; one that needs only the history may leave out the others.

    Called by the monitoring service on the ingest path, only for the field the batch
    belongs to: keep it allocation-light and free of I/O.
    """


@hookspec
def derive_inputs() -> Collection[str]:
    """Name the metrics ``derive`` reads from a batch (optional).

    The host then hands ``derive`` only the batch's readings of these metrics, instead of
    building every reading of every batch for it: on the ingest path that is most of the
    cost of deriving. Without this hook ``derive`` gets all of them. Metrics of this field.

    Called once per plugin by the host at load time.
    """
