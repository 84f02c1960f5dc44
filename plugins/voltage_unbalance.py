"""Voltage unbalance of a three-phase system, from the voltage magnitudes a meter reads.

Two measures, since meters read either kind of voltage: the IEC 61000-4-30 negative- over
positive-sequence ratio from the line voltages (:func:`negative_sequence_unbalance`), and the
NEMA MG 1 deviation from the mean, which phase-to-neutral voltages allow
(:func:`deviation_unbalance`). :func:`unbalance_readings` computes one of them at every
instant of a batch, with the quality the inputs allow; the electricity field's ``derive``
calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime

from smartcity.fields import Quality, Reading

DEAD_BUS_KV = 0.05
"""Below this average voltage (50 V, a fifth of the lowest phase voltage the city
distributes, 230 V) a bay is de-energised and has no unbalance to speak of."""


def negative_sequence_unbalance(u_ab: float, u_bc: float, u_ca: float) -> float | None:
    """u2 in %, the negative-sequence over the positive-sequence voltage, from the three
    line-voltage magnitudes alone (IEC 61000-4-30, supply voltage unbalance)::

        beta = (U_ab^4 + U_bc^4 + U_ca^4) / (U_ab^2 + U_bc^2 + U_ca^2)^2
        u2   = sqrt((1 - sqrt(3 - 6 beta)) / (1 + sqrt(3 - 6 beta))) * 100 %

    Line voltages carry no zero-sequence component, which is why their magnitudes are
    enough. ``None`` when the magnitudes cannot be those of three phasors that sum to zero
    (one longer than the other two together): a measurement fault, not an unbalance. The
    standard takes fundamental components; meters report true RMS, which differs by the
    harmonic content (a fraction of a per cent at usual THD).
    """
    squares = u_ab * u_ab + u_bc * u_bc + u_ca * u_ca
    beta = (u_ab**4 + u_bc**4 + u_ca**4) / (squares * squares)
    radicand = 3 - 6 * beta
    if radicand < -1e-9:
        return None
    root = math.sqrt(max(radicand, 0.0))
    return 100 * math.sqrt((1 - root) / (1 + root))


def deviation_unbalance(v_a: float, v_b: float, v_c: float) -> float | None:
    """The largest deviation from the mean over the mean, in %: NEMA MG 1's percent
    unbalance (14.36), which NEMA states for line voltages and which applied to phase
    voltages is the "phase voltage unbalance rate". Phase magnitudes hold no angles, so
    the IEC measure cannot be had from them; this one can, and flags a lost phase as
    plainly (100 % with one phase at zero). Always a value; the signature matches
    :func:`negative_sequence_unbalance`."""
    mean = (v_a + v_b + v_c) / 3
    return 100 * max(abs(v_a - mean), abs(v_b - mean), abs(v_c - mean)) / mean


def _aligned(
    readings: Sequence[Reading], names: tuple[str, str, str]
) -> Iterator[tuple[datetime, tuple[Reading, Reading, Reading]]]:
    """Each instant of the batch at which one of ``names`` was read, with the latest
    reading of every one of them at that instant: sample and hold within the batch, since
    a meter reporting by exception leaves out a phase that has not moved. Instants before
    all three have been seen in the batch are skipped."""
    first, second, third = names
    held: dict[str, Reading] = {}
    instant: datetime | None = None
    for reading in readings:
        if reading.metric not in names:
            continue
        if instant is not None and reading.timestamp != instant and len(held) == 3:
            yield instant, (held[first], held[second], held[third])
        held[reading.metric] = reading
        instant = reading.timestamp
    if instant is not None and len(held) == 3:
        yield instant, (held[first], held[second], held[third])


def unbalance_readings(
    metric: str,
    names: tuple[str, str, str],
    formula: Callable[[float, float, float], float | None],
    readings: Sequence[Reading],
) -> Iterator[Reading]:
    bad, good = Quality.BAD, Quality.GOOD
    for instant, inputs in _aligned(readings, names):
        a, b, c = inputs
        if a.quality is bad or b.quality is bad or c.quality is bad:
            continue  # no value to compute with; the bad input is stored with its reason
        v_1, v_2, v_3 = float(a.value), float(b.value), float(c.value)
        if v_1 + v_2 + v_3 < 3 * DEAD_BUS_KV:
            continue
        value = formula(v_1, v_2, v_3)
        if value is None:
            yield Reading(
                metric,
                math.nan,
                "%",
                instant,
                Quality.BAD,
                f"{', '.join(names)} of {v_1:g}, {v_2:g}, {v_3:g} kV cannot be the magnitudes "
                "of a three-phase system (one exceeds the sum of the others)",
            )
        elif a.quality is good and b.quality is good and c.quality is good:
            yield Reading(metric, value, "%", instant)
        else:
            reason = "; ".join(
                f"{reading.metric} uncertain" + (f": {reading.reason}" if reading.reason else "")
                for reading in inputs
                if reading.quality is not good
            )
            yield Reading(metric, value, "%", instant, Quality.UNCERTAIN, reason)
