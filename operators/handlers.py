"""The kopf handlers: thin, each one calls :mod:`smartcity.operators.reconcile` and turns its
outcome into kopf's terms (a status patch, a retry with back-off, a log line).

Handlers are registered on :data:`registry` rather than kopf's global one, so that whoever
runs the operator (``smartcity operator``, the tests) says which handlers run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import kopf
from kubernetes_asyncio import client, config

from smartcity.operators import reconcile, status
from smartcity.operators.crds import GROUP, VERSION
from smartcity.operators.kube import Cluster
from smartcity.operators.pods import MANAGED_BY
from smartcity.runtime.errors import Unavailable

registry = kopf.OperatorRegistry()
PLURALS = {"SmartCity": "smartcities", "EdgeAgent": "edgeagents"}


@dataclass
class Options:
    """How this operator process runs; kept in kopf's memo for every handler."""

    api_server: str | None = None
    """A plain-HTTP API endpoint (``kubectl proxy``, a test server) instead of the
    in-cluster service account or the kubeconfig."""
    nats_url: str | None = None
    """The NATS of the chart, for resources that name none."""
    known_fields: list[str] | None = None
    """Fields an agent's profiles may name; None accepts any."""
    cluster: Cluster | None = None
    api: client.ApiClient | None = None


def _options(memo: Any) -> Options:
    return memo.options  # type: ignore[no-any-return]


def _cluster(memo: Any) -> Cluster:
    cluster = _options(memo).cluster
    if cluster is None:
        raise kopf.TemporaryError("the Kubernetes client is not ready yet", delay=5)
    return cluster


def _backoff(retry: int) -> float:
    return float(min(300, 5 * 2 ** min(retry, 6)))


@kopf.on.startup(registry=registry)
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    # Progress and the last handled spec go into annotations of our own group, so that the
    # status holds only what users read: conditions and what the children say.
    settings.persistence.finalizer = f"{GROUP}/operator"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.level = logging.WARNING
    options = _options(memo)
    configuration = client.Configuration()
    if options.api_server:
        configuration.host = options.api_server
    else:
        try:
            config.load_incluster_config(client_configuration=configuration)
        except config.ConfigException:
            await config.load_kube_config(client_configuration=configuration)
    options.api = client.ApiClient(configuration)
    options.cluster = Cluster(options.api)


@kopf.on.cleanup(registry=registry)
async def cleanup(memo: Any, **_: Any) -> None:
    options = _options(memo)
    if options.api is not None:
        await options.api.close()


@kopf.on.login(registry=registry)
async def login(memo: Any, **kwargs: Any) -> kopf.ConnectionInfo | None:
    server = _options(memo).api_server
    if server:
        return kopf.ConnectionInfo(server=server)
    return await kopf.login_via_async_client(**kwargs)


@kopf.on.probe(registry=registry, id="api")
async def api_reachable(memo: Any, **_: Any) -> bool:
    """The liveness endpoint answers only while the operator has a client for the API."""
    return _options(memo).cluster is not None


def _settle(outcome: reconcile.Outcome, patch: kopf.Patch, retry: int, logger: Any) -> None:
    for change in outcome.changes:
        logger.info(change)
    patch.status.update(outcome.status)
    if outcome.retry is not None:
        logger.warning(outcome.retry.message)
        raise kopf.TemporaryError(outcome.retry.message, delay=_backoff(retry))
    problem = status.carried_problem(outcome.status.get("conditions", []))
    if problem is not None:
        # Permanent until the spec changes: kopf calls again on the next edit.
        logger.error(f"{problem.reason}: {problem.message}")


@kopf.on.resume(GROUP, VERSION, "smartcities", registry=registry)
@kopf.on.create(GROUP, VERSION, "smartcities", registry=registry)
@kopf.on.update(GROUP, VERSION, "smartcities", registry=registry)
async def reconcile_city(
    body: kopf.Body, memo: Any, patch: kopf.Patch, retry: int, logger: Any, **_: Any
) -> None:
    try:
        outcome = await reconcile.reconcile_city(_cluster(memo), body, _options(memo).nats_url)
    except Unavailable as exc:
        raise kopf.TemporaryError(exc.message, delay=_backoff(retry)) from None
    _settle(outcome, patch, retry, logger)


@kopf.on.resume(GROUP, VERSION, "edgeagents", registry=registry)
@kopf.on.create(GROUP, VERSION, "edgeagents", registry=registry)
@kopf.on.update(GROUP, VERSION, "edgeagents", registry=registry)
async def reconcile_agent(
    body: kopf.Body, memo: Any, patch: kopf.Patch, retry: int, logger: Any, **_: Any
) -> None:
    options = _options(memo)
    try:
        outcome = await reconcile.reconcile_agent(
            _cluster(memo), body, options.nats_url, options.known_fields
        )
    except Unavailable as exc:
        raise kopf.TemporaryError(exc.message, delay=_backoff(retry)) from None
    _settle(outcome, patch, retry, logger)


@kopf.on.delete(GROUP, VERSION, "smartcities", registry=registry)
@kopf.on.delete(GROUP, VERSION, "edgeagents", registry=registry)
async def remove(body: kopf.Body, memo: Any, retry: int, logger: Any, **_: Any) -> None:
    meta = body["metadata"]
    try:
        changes = await reconcile.remove(_cluster(memo), meta["namespace"], meta["uid"])
    except Unavailable as exc:
        raise kopf.TemporaryError(exc.message, delay=_backoff(retry)) from None
    for change in changes:
        logger.info(change)


@kopf.on.event(
    "apps",
    "v1",
    "deployments",
    labels={"app.kubernetes.io/managed-by": MANAGED_BY},
    registry=registry,
)
async def workload_changed(body: kopf.Body, memo: Any, **_: Any) -> None:
    """A child Deployment changed: its owner's conditions follow."""
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        plural = PLURALS.get(ref.get("kind", ""))
        if plural and str(ref.get("apiVersion", "")).startswith(f"{GROUP}/"):
            await refresh_status(_cluster(memo), plural, meta["namespace"], ref["name"])


async def refresh_status(cluster: Cluster, plural: str, namespace: str, name: str) -> None:
    owner = await cluster.get_custom(plural, namespace, name)
    if owner is None or owner.get("metadata", {}).get("deletionTimestamp"):
        return
    uid = owner["metadata"]["uid"]
    workloads = [status.workload(d) for d in await cluster.owned("Deployment", namespace, uid)]
    previous = (owner.get("status") or {}).get("conditions") or []
    generation = (owner.get("status") or {}).get("observedGeneration")
    new: dict[str, Any] = {
        "conditions": status.conditions(
            previous, workloads, status.carried_problem(previous), generation
        )
    }
    if plural == "smartcities":
        new.update(status.summary(workloads))
    else:
        new.update(reconcile.agent_status(name, workloads))
    await cluster.patch_status(plural, namespace, name, new)
