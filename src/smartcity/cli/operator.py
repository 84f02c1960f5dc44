"""``smartcity operator``: the Kubernetes operator that turns ``SmartCity`` and ``EdgeAgent``
resources into workloads; ``operator crds`` prints the CustomResourceDefinitions it serves.

The operator is :mod:`smartcity.operators` run under kopf; the Helm chart in
``charts/smartcity`` deploys it with the CRDs, its RBAC and a NATS JetStream cluster.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated

import typer

from smartcity.cli.errors import fail

operator_app = typer.Typer(name="operator", invoke_without_command=True)


@operator_app.callback()
def operator_run(
    ctx: typer.Context,
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Serve only this namespace (repeat for several; glob patterns allowed). "
            "Default: every namespace.",
        ),
    ] = None,
    nats: Annotated[
        str | None,
        typer.Option("--nats", help="NATS URL for resources that name none (the chart's NATS)."),
    ] = None,
    liveness: Annotated[
        str | None,
        typer.Option(
            "--liveness",
            help="Serve the liveness endpoint here, e.g. http://0.0.0.0:8080/healthz.",
        ),
    ] = None,
    peering: Annotated[
        str | None,
        typer.Option(
            "--peering",
            help="ClusterKopfPeering name shared by the operator's replicas: one of them "
            "works, the others wait (high availability). Default: run standalone.",
        ),
    ] = None,
    priority: Annotated[
        int | None,
        typer.Option(
            help="Peering priority; the highest replica works (default: random, so that "
            "replicas differ)."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            help="A plain-HTTP API endpoint such as `kubectl proxy`'s http://127.0.0.1:8001 "
            "(default: the in-cluster service account, else the kubeconfig).",
        ),
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at DEBUG.")] = False,
) -> None:
    """Run the operator until SIGTERM or Ctrl-C.

    It deploys what each SmartCity enables (Deployments, Services, ConfigMaps, disruption
    budgets, network policies, the JetStream streams Job) and each EdgeAgent (a Deployment
    with its profiles), and reports Ready/Progressing/Degraded in their status.
    """
    if ctx.invoked_subcommand is not None:
        return
    import kopf

    from smartcity.fields import FieldHostError, load_fields
    from smartcity.operators.handlers import Options, registry

    try:
        known = [field.id for field in load_fields()]
    except FieldHostError as exc:
        fail(exc)
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON)
    options = Options(api_server=server, nats_url=nats, known_fields=known)
    kopf.run(
        registry=registry,
        clusterwide=not namespace,
        namespaces=namespace or (),
        standalone=peering is None,
        peering_name=peering,
        priority=priority if priority is not None else random.randint(1, 1_000_000),
        liveness_endpoint=liveness,
        memo=kopf.Memo(options=options),
    )


@operator_app.command("crds")
def operator_crds(
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", dir_okay=False, help="Write to this file (default: stdout)."),
    ] = None,
) -> None:
    """Print the SmartCity and EdgeAgent CustomResourceDefinitions (kubectl apply -f -)."""
    from smartcity.operators.crds import render

    text = render()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
