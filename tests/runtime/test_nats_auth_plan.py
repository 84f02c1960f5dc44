"""The permission plan and its nats-server rendering, without a running server: names that
could widen a permission are refused, and whatever is accepted is a configuration
nats-server itself accepts (``nats-server -t``) whose agent permissions stay on the agent's
own devices."""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from smartcity.runtime.nats_auth.plan import (
    SERVICES,
    AgentPlan,
    DeviceRef,
    NatsAuthError,
    Principal,
    PrincipalKind,
    platform_principals,
)
from smartcity.runtime.nats_auth.render import render_authorization
from smartcity.runtime.nats_server import find_nats_server

STATION = DeviceRef("water_supply", "cau-do", "station-1")
FAKE_HASH = "$2a$04$" + "a" * 53


def agent(principals: list[Principal]) -> Principal:
    (found,) = [p for p in principals if p.kind is PrincipalKind.AGENT]
    return found


def server_accepts(config: str) -> tuple[bool, str]:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "authorization.conf"
        path.write_text(config, encoding="utf-8")
        done = subprocess.run(
            [str(find_nats_server()), "-t", "-c", str(path)],
            capture_output=True,
            text=True,
            timeout=30,
        )
    return done.returncode == 0, done.stdout + done.stderr


def test_an_agent_gets_exactly_its_devices_subjects():
    meter = DeviceRef("electricity", "hoa-khanh-110kv", "bay-1-meter")
    principal = agent(platform_principals([AgentPlan("north", (meter, STATION))]))
    assert principal.user == "agent-north"
    assert principal.permissions is not None
    assert principal.permissions.publish == (
        "city.telemetry.electricity.hoa-khanh-110kv.bay-1-meter",
        "city.telemetry.water_supply.cau-do.station-1",
        "city.agents.cau-do.north",
        "city.agents.hoa-khanh-110kv.north",
        "city.audit.commands.hoa-khanh-110kv.bay-1-meter",
        "city.audit.commands.cau-do.station-1",
        "$JS.API.STREAM.INFO.TELEMETRY",
        "$JS.API.STREAM.INFO.AUDIT",
    )
    assert principal.permissions.subscribe == (
        "city.commands.hoa-khanh-110kv.bay-1-meter",
        "city.commands.cau-do.station-1",
        "_INBOX.agent-north.>",
    )
    assert principal.permissions.allow_responses


def test_an_agent_run_as_workers_may_publish_each_workers_heartbeats():
    principal = agent(platform_principals([AgentPlan("north", (STATION,), workers=2)]))
    assert principal.permissions is not None
    heartbeats = [s for s in principal.permissions.publish if s.startswith("city.agents.")]
    # The names smartcity agent --workers 2 gives its workers, written out by hand.
    assert heartbeats == [
        "city.agents.cau-do.north",
        "city.agents.cau-do.north-1of2",
        "city.agents.cau-do.north-2of2",
    ]
    with pytest.raises(NatsAuthError, match="workers"):
        platform_principals([AgentPlan("north", (STATION,), workers=0)])


def test_no_service_may_administer_streams():
    principals = platform_principals([])
    assert [p.user for p in principals] == ["admin", *SERVICES]
    assert principals[0].permissions is None
    for service in principals[1:]:
        assert service.permissions is not None
        for subject in service.permissions.publish:
            assert not subject.startswith(("$JS.API.STREAM.CREATE", "$JS.API.STREAM.DELETE"))
            assert subject not in ("$JS.API.>", ">", "city.>"), service.user
        assert service.permissions.subscribe[-1] == f"_INBOX.{service.user}.>"


def test_only_consuming_services_dead_letter_and_each_on_its_own_durable():
    by_user = {p.user: p for p in platform_principals([])}
    for user, durable in (("monitoring", "monitoring"), ("alerts", "alerts")):
        publish = by_user[user].permissions.publish
        assert "city.deadletter.telemetry" in publish
        assert f"$JS.API.CONSUMER.MSG.NEXT.TELEMETRY.{durable}" in publish
        assert f"$JS.ACK.TELEMETRY.{durable}.>" in publish
    for user in ("identity", "records", "console"):
        assert not any("deadletter" in s for s in by_user[user].permissions.publish), user
        assert not any(
            "TELEMETRY." in s and "CONSUMER" in s for s in by_user[user].permissions.publish
        )


@pytest.mark.parametrize(
    ("plan", "reason"),
    [
        (AgentPlan("north", (DeviceRef("electricity", "a.b", "m"),)), "contains '.'"),
        (AgentPlan("north", (DeviceRef("electricity", "*", "m"),)), "contains '*'"),
        (AgentPlan("north", (DeviceRef("electricity", "s", ">"),)), "contains '>'"),
        (AgentPlan("north", (DeviceRef("electricity", "s 1", "m"),)), "contains ' '"),
        (AgentPlan("north", (DeviceRef("", "s", "m"),)), "field must not be empty"),
        (AgentPlan("north", (DeviceRef("e", "s\ud800", "m"),)), "not valid Unicode"),
        (AgentPlan("north", (DeviceRef("e", "s" * 300, "m"),)), "longer than 255 bytes"),
        (AgentPlan("North", (STATION,)), "agent id 'North' must be 1 to 63 lower case"),
        (AgentPlan("a.b", (STATION,)), "agent id 'a.b' must be"),
        (AgentPlan("north", ()), "agent 'north' serves no device"),
    ],
)
def test_unsafe_names_are_refused_with_the_reason(plan, reason):
    with pytest.raises(NatsAuthError) as refused:
        platform_principals([plan])
    assert reason in str(refused.value)


def test_an_agent_planned_twice_or_an_unknown_service_is_refused():
    with pytest.raises(NatsAuthError, match="agent 'north' is planned twice"):
        platform_principals([AgentPlan("north", (STATION,)), AgentPlan("north", (STATION,))])
    with pytest.raises(NatsAuthError, match="unknown service"):
        platform_principals([], services=["monitoring", "billing"])


def test_the_rendered_configuration_is_what_nats_server_accepts():
    principals = platform_principals([AgentPlan("north", (STATION,))])
    config = render_authorization([(p, FAKE_HASH) for p in principals])
    accepted, output = server_accepts(config)
    assert accepted, output
    assert config.count("user: ") == len(principals)
    assert "allow_responses: true" in config


# -- arbitrary names ---------------------------------------------------------------------------

# Mostly printable text (which a subject token may be, '.', '*', '>' aside), some of anything.
printable = st.characters(exclude_categories=["Cs", "Cc", "Zs", "Zl", "Zp"])
names = (
    st.text(printable, min_size=1, max_size=16)
    | st.text(max_size=16)
    | st.sampled_from(
        ["cau-do", "a.b", "*", ">", "a b", 'q"uote', "back\\slash", "Đà-Nẵng", "$JS", "_INBOX", "#"]
    )
)


def _contained(principal: Principal, plan: AgentPlan) -> None:
    """Every subject the agent may use is one of its own devices' (or its inbox, or one of
    two read-only stream look-ups), with literal tokens only."""
    assert principal.permissions is not None
    own_sites = {ref.site for ref in plan.devices}
    own_devices = {(ref.site, ref.device) for ref in plan.devices}
    for subject in principal.permissions.publish:
        if subject.startswith("$JS.API.STREAM.INFO."):
            assert subject.rsplit(".", 1)[1] in ("TELEMETRY", "AUDIT")
            continue
        tokens = subject.split(".")
        assert "*" not in tokens, subject
        assert ">" not in tokens, subject
        if tokens[1] == "telemetry":
            assert len(tokens) == 5, subject
            assert (tokens[3], tokens[4]) in own_devices, subject
        elif tokens[1] == "agents":
            assert tokens[3:] == [plan.id], subject
            assert tokens[2] in own_sites, subject
        else:
            assert tokens[1:3] == ["audit", "commands"], subject
            assert len(tokens) == 5, subject
            assert (tokens[3], tokens[4]) in own_devices, subject
    for subject in principal.permissions.subscribe:
        if subject == f"_INBOX.{principal.user}.>":
            continue
        tokens = subject.split(".")
        assert tokens[:2] == ["city", "commands"], subject
        assert len(tokens) == 4, subject
        assert (tokens[2], tokens[3]) in own_devices, subject


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    agent_id=st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True) | names,
    field=names,
    site=names,
    device=names,
)
def test_arbitrary_names_are_refused_or_contained_and_accepted(agent_id, field, site, device):
    plan = AgentPlan(agent_id, (DeviceRef(field, site, device),))
    try:
        principals = platform_principals([plan], services=["monitoring"])
    except NatsAuthError as refused:
        reason = str(refused)
        principals = []
    if not principals:
        assert reason  # refused, with a reason
        event("refused")
        return
    event("accepted")
    for value in (field, site, device):
        assert not any(c in value for c in ".*>")
        assert value.split() == [value]
    _contained(agent(principals), plan)
    accepted, output = server_accepts(render_authorization([(p, FAKE_HASH) for p in principals]))
    assert accepted, output
