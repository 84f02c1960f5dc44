"""``smartcity alerts``: the alerts service from a terminal.

``list`` and ``show`` read alerts (``show`` with every change, who and when); ``ack``,
``unack`` and ``assign`` act on one as the token's user; ``silence`` mutes by label
matchers for a while; ``rules`` lists, shows, creates (from a JSON file in the protobuf JSON
form of ``smartcity.alerts.v1.Rule``), enables, disables and deletes rules. Every command
speaks the public gRPC API, tables for people and ``--json`` for scripts, like
``smartcity query``.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import grpc
import grpc.aio
import typer
from google.protobuf import json_format
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.cli.errors import fail
from smartcity.cli.query import parse_duration

__all__ = ["alerts_app"]

alerts_app = typer.Typer(
    name="alerts", help="Alerts, silences and rules of an alerts service.", no_args_is_help=True
)
silence_app = typer.Typer(help="Mute alerts by label matchers for a while.", no_args_is_help=True)
rules_app = typer.Typer(help="The rules alerts come from.", no_args_is_help=True)
alerts_app.add_typer(silence_app, name="silence")
alerts_app.add_typer(rules_app, name="rules")

TARGET_ENV = "SMARTCITY_ALERTS_TARGET"
DEFAULT_TARGET = "127.0.0.1:50054"

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts instead.")]
TargetOption = Annotated[
    str,
    typer.Option("--target", "-t", envvar=TARGET_ENV, help="Alerts service host:port."),
]
TokenOption = Annotated[
    str | None,
    typer.Option("--token", envvar="SMARTCITY_TOKEN", help="Access token (bearer)."),
]
CommentOption = Annotated[str, typer.Option("--comment", "-m", help="Why, for the record.")]
_SEVERITY = {1: "info", 2: "warning", 3: "critical"}
_STATE = {1: "pending", 2: "firing", 3: "resolved"}
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _call(target: str, token: str | None, method: str, request: Any) -> Any:
    """One RPC; a gRPC failure becomes one line and an exit code (2: the request is wrong)."""
    from smartcity.alerts.v1 import alerts_pb2_grpc
    from smartcity.runtime.grpc_client import channel

    async def run() -> Any:
        async with channel(target, token=token) as connection:
            stub = alerts_pb2_grpc.AlertsServiceStub(connection)
            return await getattr(stub, method)(request, timeout=10)

    try:
        return asyncio.run(run())
    except grpc.aio.AioRpcError as exc:
        _failed(target, exc)


def _failed(target: str, exc: grpc.aio.AioRpcError) -> NoReturn:
    code = exc.code()
    if code == grpc.StatusCode.UNAVAILABLE:
        fail(f"cannot reach the alerts service at {target}: {exc.details()}")
    usage = code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    fail(f"{code.name.lower().replace('_', ' ')}: {exc.details()}", 2 if usage else 1)


def _json(message: Any) -> Any:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def _when(stamp: Timestamp) -> str:
    if not stamp.seconds and not stamp.nanos:
        return ""
    return stamp.ToDatetime(UTC).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _echo_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def _alerts_table(alerts: Any) -> Table:
    table = Table("fingerprint", "state", "severity", "alert", "site/device", "since", "handled")
    for a in alerts:
        severity = _SEVERITY.get(a.severity, "?")
        handled = ", ".join(
            part
            for part in (
                f"ack {a.acknowledged_by.id}" if a.HasField("acknowledged_by") else "",
                f"assigned {a.assignee.id}" if a.HasField("assignee") else "",
                "silenced" if a.silenced_by else "",
                "inhibited" if a.inhibited_by else "",
            )
            if part
        )
        table.add_row(
            a.fingerprint,
            _STATE.get(a.state, "?"),
            f"[{_STYLE[severity]}]{severity}[/]" if severity in _STYLE else severity,
            escape(a.labels.get("alertname", a.rule_id)),
            escape(f"{a.labels.get('site', '')}/{a.labels.get('device', '')}"),
            _when(a.start_time) or _when(a.active_time),
            escape(handled),
        )
    return table


# -- alerts ------------------------------------------------------------------------------------


@alerts_app.command("list")
def list_command(
    field: Annotated[str, typer.Option("--field", "-f", help="Field id.")] = "",
    state: Annotated[
        list[str] | None, typer.Option("--state", help="pending, firing, resolved (repeatable).")
    ] = None,
    everything: Annotated[
        bool, typer.Option("--all", help="Also silenced and inhibited alerts.")
    ] = False,
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Open alerts (or those in --state), most severe first, then newest."""
    numbers = {name: number for number, name in _STATE.items()}
    unknown = [s for s in state or [] if s not in numbers]
    if unknown:
        fail(f"unknown state {unknown[0]!r}: use pending, firing or resolved", 2)
    request = pb.ListAlertsRequest(
        field=field,
        states=[numbers[s] for s in state or []],
        include_silenced=everything,
        include_inhibited=everything,
    )
    response = _call(target, token, "ListAlerts", request)
    if json_output:
        _echo_json([_json(a) for a in response.alerts])
        return
    Console().print(_alerts_table(response.alerts))


@alerts_app.command("show")
def show_command(
    fingerprint: str,
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """One alert and every change of it: what, when, who."""
    alert = _call(target, token, "GetAlert", pb.GetAlertRequest(fingerprint=fingerprint)).alert
    request = pb.GetAlertHistoryRequest(fingerprint=fingerprint)
    history = _call(target, token, "GetAlertHistory", request).events
    if json_output:
        _echo_json({"alert": _json(alert), "history": [_json(e) for e in history]})
        return
    console = Console()
    console.print(_alerts_table([alert]))
    for key, value in sorted(alert.annotations.items()):
        console.print(f"  {escape(key)}: {escape(value)}", highlight=False)
    table = Table("revision", "when", "what", "who", "comment")
    for e in history:
        what = pb.AlertEvent.Type.Name(e.type).removeprefix("TYPE_").lower()
        table.add_row(str(e.revision), _when(e.event_time), what, e.actor.id, escape(e.comment))
    console.print(table)


@alerts_app.command("ack")
def ack_command(
    fingerprint: str,
    comment: CommentOption = "",
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Acknowledge a firing alert: you are handling it (stops reminders and escalation)."""
    request = pb.AcknowledgeAlertRequest(fingerprint=fingerprint, comment=comment)
    alert = _call(target, token, "AcknowledgeAlert", request).alert
    typer.echo(f"acknowledged {alert.fingerprint} as {alert.acknowledged_by.id}")


@alerts_app.command("unack")
def unack_command(
    fingerprint: str,
    comment: CommentOption = "",
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Withdraw an acknowledgement."""
    request = pb.UnacknowledgeAlertRequest(fingerprint=fingerprint, comment=comment)
    alert = _call(target, token, "UnacknowledgeAlert", request).alert
    typer.echo(f"unacknowledged {alert.fingerprint}")


@alerts_app.command("assign")
def assign_command(
    fingerprint: str,
    to: Annotated[str, typer.Option("--to", help="Assignee id; default yourself.")] = "",
    clear: Annotated[bool, typer.Option("--clear", help="Remove the assignment.")] = False,
    comment: CommentOption = "",
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Assign an open alert to someone (or clear the assignment)."""
    request = pb.AssignAlertRequest(
        fingerprint=fingerprint, assignee="-" if clear else to, comment=comment
    )
    alert = _call(target, token, "AssignAlert", request).alert
    who = alert.assignee.id if alert.HasField("assignee") else "nobody"
    typer.echo(f"{alert.fingerprint} assigned to {who}")


# -- silences ----------------------------------------------------------------------------------


def _matcher(text: str) -> pb.Matcher:
    for operator, kind in (
        ("!~", pb.Matcher.TYPE_NOT_REGEX),
        ("=~", pb.Matcher.TYPE_REGEX),
        ("!=", pb.Matcher.TYPE_NOT_EQUAL),
        ("=", pb.Matcher.TYPE_EQUAL),
    ):
        name, found, value = text.partition(operator)
        if found:
            return pb.Matcher(name=name.strip(), value=value.strip(), type=kind)
    fail(f"{text!r} is not a matcher: use name=value, name!=value, name=~regex or name!~regex", 2)


@silence_app.command("add")
def silence_add(
    match: Annotated[list[str], typer.Option("--match", help="name=value (repeatable).")],
    duration: Annotated[str, typer.Option("--for", help="How long, e.g. 2h, 30m.")],
    comment: CommentOption = "",
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Silence the alerts that match every --match, from now for --for."""
    try:
        span = parse_duration(duration)
    except ValueError as exc:
        fail(exc, 2)
    end = Timestamp()
    end.FromDatetime(datetime.now(UTC) + span)
    silence = pb.Silence(matchers=[_matcher(m) for m in match], end_time=end, comment=comment)
    created = _call(target, token, "CreateSilence", pb.CreateSilenceRequest(silence=silence))
    if json_output:
        _echo_json(_json(created.silence))
        return
    typer.echo(f"silence {created.silence.id} until {_when(created.silence.end_time)}")


@silence_app.command("list")
def silence_list(
    everything: Annotated[bool, typer.Option("--all", help="Expired ones too.")] = False,
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Pending and active silences (with --all, expired ones too)."""
    states = [pb.SILENCE_STATE_PENDING, pb.SILENCE_STATE_ACTIVE]
    if everything:
        states.append(pb.SILENCE_STATE_EXPIRED)
    response = _call(target, token, "ListSilences", pb.ListSilencesRequest(states=states))
    if json_output:
        _echo_json([_json(s) for s in response.silences])
        return
    table = Table("id", "state", "matchers", "until", "by", "comment")
    kinds = {1: "=", 2: "!=", 3: "=~", 4: "!~"}
    for s in response.silences:
        matchers = ", ".join(f"{m.name}{kinds.get(m.type, '?')}{m.value}" for m in s.matchers)
        state = pb.SilenceState.Name(s.state).removeprefix("SILENCE_STATE_").lower()
        table.add_row(
            s.id, state, escape(matchers), _when(s.end_time), s.created_by.id, escape(s.comment)
        )
    Console().print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """End a silence now."""
    _call(target, token, "ExpireSilence", pb.ExpireSilenceRequest(id=silence_id))
    typer.echo(f"silence {silence_id} expired")


# -- rules -------------------------------------------------------------------------------------


@rules_app.command("list")
def rules_list(
    field: Annotated[str, typer.Option("--field", "-f", help="Field id.")] = "",
    everything: Annotated[bool, typer.Option("--all", help="Disabled rules too.")] = False,
    json_output: JsonOption = False,
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Rules by field and id."""
    request = pb.ListRulesRequest(field=field, include_disabled=everything)
    rules = _call(target, token, "ListRules", request).rules
    if json_output:
        _echo_json([_json(r) for r in rules])
        return
    table = Table("id", "field", "metric", "condition", "severity", "enabled", "origin")
    for r in rules:
        table.add_row(
            r.id,
            r.field,
            r.selector.metric,
            r.WhichOneof("condition") or "",
            _SEVERITY.get(r.severity, "?"),
            "yes" if r.enabled else "no",
            pb.RuleOrigin.Name(r.origin).removeprefix("RULE_ORIGIN_").lower(),
        )
    Console().print(table)


@rules_app.command("show")
def rules_show(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """One rule, as JSON."""
    _echo_json(_json(_call(target, token, "GetRule", pb.GetRuleRequest(id=rule_id)).rule))


@rules_app.command("create")
def rules_create(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="Rule as JSON.")],
    target: TargetOption = DEFAULT_TARGET,
    token: TokenOption = None,
) -> None:
    """Create a rule from a JSON file (``smartcity.alerts.v1.Rule`` in protobuf JSON)."""
    try:
        rule = json_format.Parse(file.read_text(encoding="utf-8"), pb.Rule())
    except (json_format.ParseError, UnicodeDecodeError) as exc:
        fail(f"{file}: not a rule: {exc}", 2)
    created = _call(target, token, "CreateRule", pb.CreateRuleRequest(rule=rule)).rule
    typer.echo(f"rule {created.id} created (version {created.version})")


def _enable(rule_id: str, enabled: bool, target: str, token: str | None) -> None:
    request = pb.UpdateRuleRequest(
        rule=pb.Rule(id=rule_id, enabled=enabled), update_mask=FieldMask(paths=["enabled"])
    )
    rule = _call(target, token, "UpdateRule", request).rule
    typer.echo(f"rule {rule.id} {'enabled' if rule.enabled else 'disabled'}")


@rules_app.command("enable")
def rules_enable(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Evaluate a rule again."""
    _enable(rule_id, True, target, token)


@rules_app.command("disable")
def rules_disable(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Stop evaluating a rule; its open alerts resolve."""
    _enable(rule_id, False, target, token)


@rules_app.command("delete")
def rules_delete(
    rule_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """Delete a rule made through the API (a plugin's rule can only be disabled)."""
    _call(target, token, "DeleteRule", pb.DeleteRuleRequest(id=rule_id))
    typer.echo(f"rule {rule_id} deleted")
