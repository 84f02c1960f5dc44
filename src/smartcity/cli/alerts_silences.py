"""``smartcity alerts silence``: mute the alerts that match label matchers, for a while.

Matchers are written as Alertmanager's are (``name=value``, ``name!=value``,
``name=~regex``, ``name!~regex``); the span after ``--for`` as ``smartcity query`` takes it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer
from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from smartcity.alerts.v1 import alerts_pb2 as pb
from smartcity.cli.alerts_client import (
    DEFAULT_TARGET,
    CommentOption,
    JsonOption,
    TargetOption,
    TokenOption,
    as_json,
    call,
    echo_json,
    when,
)
from smartcity.cli.errors import fail
from smartcity.cli.times import parse_duration

__all__ = ["silence_app"]

silence_app = typer.Typer(help="Mute alerts by label matchers for a while.", no_args_is_help=True)


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
    created = call(target, token, "CreateSilence", pb.CreateSilenceRequest(silence=silence))
    if json_output:
        echo_json(as_json(created.silence))
        return
    typer.echo(f"silence {created.silence.id} until {when(created.silence.end_time)}")


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
    response = call(target, token, "ListSilences", pb.ListSilencesRequest(states=states))
    if json_output:
        echo_json([as_json(s) for s in response.silences])
        return
    table = Table("id", "state", "matchers", "until", "by", "comment")
    kinds = {1: "=", 2: "!=", 3: "=~", 4: "!~"}
    for s in response.silences:
        matchers = ", ".join(f"{m.name}{kinds.get(m.type, '?')}{m.value}" for m in s.matchers)
        state = pb.SilenceState.Name(s.state).removeprefix("SILENCE_STATE_").lower()
        table.add_row(
            s.id, state, escape(matchers), when(s.end_time), s.created_by.id, escape(s.comment)
        )
    Console().print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: str, target: TargetOption = DEFAULT_TARGET, token: TokenOption = None
) -> None:
    """End a silence now."""
    call(target, token, "ExpireSilence", pb.ExpireSilenceRequest(id=silence_id))
    typer.echo(f"silence {silence_id} expired")
