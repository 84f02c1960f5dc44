"""``smartcity alerts``: the alerts service from a terminal.

``list`` and ``show`` read alerts (``show`` with every change, who and when); ``ack``,
``unack`` and ``assign`` act on one as the token's user; ``silence`` mutes by label
matchers for a while; ``rules`` lists, shows, creates (from a JSON file in the protobuf JSON
form of ``smartcity.alerts.v1.Rule``), enables, disables and deletes rules. Every command
speaks the public gRPC API, tables for people and ``--json`` for scripts, like
``smartcity query``.

This module holds the alerts themselves; ``silence`` is :mod:`.alerts_silences`, ``rules``
:mod:`.alerts_rules`, and the options, the call and the output shapes they share
:mod:`.alerts_client`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.cli.alerts_client import (
    DEFAULT_TARGET,
    SEVERITY,
    CommentOption,
    JsonOption,
    TargetOption,
    TokenOption,
    as_json,
    call,
    echo_json,
    when,
)
from smartcity.cli.alerts_rules import rules_app
from smartcity.cli.alerts_silences import silence_app
from smartcity.cli.errors import fail

__all__ = ["alerts_app"]

alerts_app = typer.Typer(
    name="alerts", help="Alerts, silences and rules of an alerts service.", no_args_is_help=True
)
alerts_app.add_typer(silence_app, name="silence")
alerts_app.add_typer(rules_app, name="rules")

_STATE = {1: "pending", 2: "firing", 3: "resolved"}
_STYLE = {"critical": "bold red", "warning": "yellow", "info": "cyan"}


def _alerts_table(alerts: Any) -> Table:
    table = Table("fingerprint", "state", "severity", "alert", "site/device", "since", "handled")
    for a in alerts:
        severity = SEVERITY.get(a.severity, "?")
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
            when(a.start_time) or when(a.active_time),
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
    response = call(target, token, "ListAlerts", request)
    if json_output:
        echo_json([as_json(a) for a in response.alerts])
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
    alert = call(target, token, "GetAlert", pb.GetAlertRequest(fingerprint=fingerprint)).alert
    request = pb.GetAlertHistoryRequest(fingerprint=fingerprint)
    history = call(target, token, "GetAlertHistory", request).events
    if json_output:
        echo_json({"alert": as_json(alert), "history": [as_json(e) for e in history]})
        return
    console = Console()
    console.print(_alerts_table([alert]))
    for key, value in sorted(alert.annotations.items()):
        console.print(f"  {escape(key)}: {escape(value)}", highlight=False)
    table = Table("revision", "when", "what", "who", "comment")
    for e in history:
        what = pb.AlertEvent.Type.Name(e.type).removeprefix("TYPE_").lower()
        table.add_row(str(e.revision), when(e.event_time), what, e.actor.id, escape(e.comment))
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
    alert = call(target, token, "AcknowledgeAlert", request).alert
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
    alert = call(target, token, "UnacknowledgeAlert", request).alert
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
    alert = call(target, token, "AssignAlert", request).alert
    who = alert.assignee.id if alert.HasField("assignee") else "nobody"
    typer.echo(f"{alert.fingerprint} assigned to {who}")
