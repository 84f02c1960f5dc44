"""Arbitrary input gets a verdict and never a crash: any rule message is created or refused
with INVALID_ARGUMENT naming rule fields (and a refusal changes nothing); any telemetry
message is decoded or rejected (by monitoring's decoder, the one the service consumes
through), and any decoded batch is evaluated, once."""

from __future__ import annotations

import itertools

from alerts_support import Clock as _Clock
from alerts_support import city_fields, evaluator, install, rule
from google.protobuf.duration_pb2 import Duration
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nats.aio.msg import Msg

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.common.v1 import common_pb2
from smartcity.readings.decode import TelemetryDecoder
from smartcity.runtime.consumer import Rejected
from smartcity.runtime.errors import AlreadyExists, InvalidArgument
from smartcity.services.alerts.messages import rule_from_message
from smartcity.services.alerts.model import MICROS, Comparison
from smartcity.services.alerts.rules import NoData, QualityBad, RateOfChange, Threshold
from smartcity.services.alerts.service import AlertsService
from smartcity.services.alerts.store import AlertStore
from smartcity.telemetry.v1 import telemetry_pb2

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SEQUENCES = itertools.count(1)


# -- rules ------------------------------------------------------------------------------------

texts = st.text(max_size=12)
names = st.sampled_from(["turbidity", "ph", "site", "field", "metric", "", "Bad Name", "x" * 120])
numbers = st.floats(allow_nan=True, allow_infinity=True) | st.integers(-10, 10).map(float)


@st.composite
def durations(draw: st.DrawFn) -> Duration:
    seconds = draw(st.integers(-(10**11), 10**11) | st.integers(-5, 120))
    return Duration(seconds=seconds, nanos=draw(st.integers(0, 999_999_999)))


@st.composite
def thresholds(draw: st.DrawFn) -> pb.ThresholdCondition:
    return pb.ThresholdCondition(
        comparison=draw(st.integers(0, 6)), threshold=draw(numbers), hysteresis=draw(numbers)
    )


@st.composite
def matchers(draw: st.DrawFn) -> pb.Matcher:
    return pb.Matcher(
        name=draw(names),
        value=draw(st.sampled_from(["cau-do", "(", ".*", "a|b", ""]) | texts),
        type=draw(st.integers(0, 6)),
    )


@st.composite
def rules(draw: st.DrawFn) -> pb.Rule:
    field = draw(st.sampled_from(["water_supply", "electricity", "nope", ""]))
    message = pb.Rule(
        id=draw(st.sampled_from(["", "ok_rule", "Bad-Id", "9x"]) | texts),
        display_name=draw(st.sampled_from(["Turbidity", "", " "]) | texts),
        field=field,
        selector=common_pb2.SeriesSelector(
            field=draw(st.sampled_from(["", field, "other"])),
            site=draw(texts),
            metric=draw(st.sampled_from(["turbidity", "ph", "", "frequency", "nope"])),
        ),
        severity=draw(st.integers(-1, 5)),
        labels=draw(st.dictionaries(names, texts, max_size=3)),
        annotations=draw(st.dictionaries(names, texts, max_size=3)),
        enabled=draw(st.booleans()),
    )
    condition = draw(st.sampled_from(["threshold", "band", "rate", "no_data", "quality", "none"]))
    if condition == "threshold":
        message.threshold.CopyFrom(draw(thresholds()))
    elif condition == "band":
        message.band.CopyFrom(
            pb.BandCondition(low=draw(numbers), high=draw(numbers), hysteresis=draw(numbers))
        )
    elif condition == "rate":
        message.rate_of_change.window.CopyFrom(draw(durations()))
        message.rate_of_change.rate.CopyFrom(draw(thresholds()))
    elif condition == "no_data":
        message.no_data.timeout.CopyFrom(draw(durations()))
    elif condition == "quality":
        message.quality_bad.SetInParent()
    message.for_duration.CopyFrom(draw(durations()))
    message.keep_firing_for.CopyFrom(draw(durations()))
    for _ in range(draw(st.integers(0, 2))):
        inhibition = message.inhibitions.add()
        inhibition.target_matchers.extend(draw(st.lists(matchers(), max_size=2)))
        inhibition.equal_labels.extend(draw(st.lists(names, max_size=2)))
    for _ in range(draw(st.integers(0, 2))):
        step = message.escalation.add(notify=draw(texts), severity=draw(st.integers(0, 5)))
        step.after.CopyFrom(draw(durations()))
    return message


@PROPERTY
@given(message=rules())
async def test_any_rule_is_created_or_refused_naming_its_fields(
    store: AlertStore, message: pb.Rule
) -> None:
    service = AlertsService(store, city_fields(), evaluator(store, _Clock()))
    before = await store.rules()
    try:
        created = await service.rules.create(rule_from_message(message))
    except InvalidArgument as refusal:
        problems = refusal.message.split("; ")
        assert all(problem.startswith("rule.") for problem in problems), problems
        assert await store.rules() == before
        return
    except AlreadyExists:
        assert await store.rules() == before
        return
    assert created.problems(city_fields()) == []
    assert await store.rule(created.id) == created


# -- telemetry --------------------------------------------------------------------------------


@st.composite
def readings(draw: st.DrawFn) -> telemetry_pb2.Reading:
    item = telemetry_pb2.Reading(
        metric=draw(st.sampled_from(["turbidity", "ph", "tank_level", "nope", "", "Bad"])),
        unit=draw(st.sampled_from(["NTU", "pH", "m", "", "kV"])),
        quality=draw(st.integers(0, 9)),
        sequence=draw(st.sampled_from([0, next(SEQUENCES)]) | st.integers(0, 2**64 - 1)),
    )
    if draw(st.booleans()):
        item.value = draw(numbers)
    item.source_time.seconds = draw(st.integers(-(2**40), 2**40) | st.just(1_795_305_600))
    item.source_time.nanos = draw(st.integers(0, 999_999_999))
    return item


@st.composite
def payloads(draw: st.DrawFn) -> tuple[str, bytes]:
    device = draw(st.sampled_from(["tb-1", "tb-2"]))
    subject = f"city.telemetry.water_supply.cau-do.{device}"
    if draw(st.booleans()):
        return subject, draw(st.binary(max_size=200))
    batch = telemetry_pb2.TelemetryBatch(
        field=draw(st.sampled_from(["water_supply", "electricity"])),
        site="cau-do",
        device=draw(st.sampled_from([device, "other"])),
        agent_id="edge-1",
        batch_id=draw(st.sampled_from(["", f"cau-do/{device}/{next(SEQUENCES)}"])),
        readings=draw(st.lists(readings(), max_size=6)),
    )
    return subject, batch.SerializeToString()


@PROPERTY
@given(messages=st.lists(payloads(), min_size=1, max_size=4))
async def test_any_telemetry_gets_a_verdict_and_a_replay_changes_nothing(
    store: AlertStore, messages: list[tuple[str, bytes]]
) -> None:
    if not await store.rules():
        await install(
            store,
            rule(),
            rule("rising", RateOfChange(10 * MICROS, Threshold(Comparison.GT, 0.1)), metric="ph"),
            rule("quiet", NoData(60 * MICROS), metric=""),
            rule("faulty", QualityBad(), metric="tank_level"),
        )
    ev = evaluator(store, _Clock())
    decoder = TelemetryDecoder(city_fields())
    accepted, reasons = [], []
    for subject, data in messages:
        try:
            accepted.append(decoder.decode(Msg(_client=None, subject=subject, data=data)))  # type: ignore[arg-type]
        except Rejected as verdict:
            reasons.append(str(verdict))
    assert len(accepted) + len(reasons) == len(messages)
    assert all(reasons), "a rejection says why"
    await ev.evaluate(accepted)
    replayed = [b for b in accepted if all(r.sequence for r in b.readings)]
    assert await ev.evaluate(replayed) == []
