"""The Kubernetes API as the operator uses it: a handful of kinds, a handful of verbs.

:data:`KINDS` is the one list of what the operator reads and writes, and
:func:`permissions` turns it (with what kopf itself needs) into the RBAC rules the chart
grants: a test checks the chart's ClusterRole against it, so the operator is granted no more
than it uses. Failures of the API server are :class:`~smartcity.runtime.errors.Unavailable`
(retried with back-off by the handlers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from smartcity.operators.crds import GROUP, VERSION
from smartcity.runtime.errors import Unavailable

MERGE_PATCH = "application/merge-patch+json"


@dataclass(frozen=True)
class Kind:
    kind: str
    api_version: str
    plural: str
    api: type
    snake: str
    """The name in the client's method names (``create_namespaced_<snake>``)."""
    verbs: frozenset[str]

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]


_WRITE = frozenset({"get", "list", "create", "patch", "delete"})
KINDS: dict[str, Kind] = {
    kind.kind: kind
    for kind in (
        Kind("ConfigMap", "v1", "configmaps", client.CoreV1Api, "config_map", _WRITE),
        Kind("Service", "v1", "services", client.CoreV1Api, "service", _WRITE),
        # Deployments are also watched: their status is what the owners' conditions say.
        Kind(
            "Deployment",
            "apps/v1",
            "deployments",
            client.AppsV1Api,
            "deployment",
            _WRITE | {"watch"},
        ),
        Kind(
            "PodDisruptionBudget",
            "policy/v1",
            "poddisruptionbudgets",
            client.PolicyV1Api,
            "pod_disruption_budget",
            _WRITE,
        ),
        Kind(
            "NetworkPolicy",
            "networking.k8s.io/v1",
            "networkpolicies",
            client.NetworkingV1Api,
            "network_policy",
            _WRITE,
        ),
        Kind("Job", "batch/v1", "jobs", client.BatchV1Api, "job", _WRITE),
        Kind("Secret", "v1", "secrets", client.CoreV1Api, "secret", frozenset({"get"})),
    )
}
OWNED = tuple(name for name in KINDS if name != "Secret")
"""The kinds the operator creates, and so deletes and prunes."""

# What kopf needs to run at all: watch its resources (and their status), find them through
# the CRDs and namespaces, peer with other operator replicas and post events.
_FRAMEWORK: dict[tuple[str, str], frozenset[str]] = {
    (GROUP, "smartcities"): frozenset({"get", "list", "watch", "patch"}),
    (GROUP, "smartcities/status"): frozenset({"patch"}),
    (GROUP, "edgeagents"): frozenset({"get", "list", "watch", "patch"}),
    (GROUP, "edgeagents/status"): frozenset({"patch"}),
    ("kopf.dev", "clusterkopfpeerings"): frozenset({"get", "list", "watch", "patch"}),
    ("apiextensions.k8s.io", "customresourcedefinitions"): frozenset({"list", "watch"}),
    ("", "namespaces"): frozenset({"list", "watch"}),
    ("", "events"): frozenset({"create"}),
}


def permissions() -> dict[tuple[str, str], frozenset[str]]:
    """(API group, resource) -> verbs: everything the operator does, nothing more."""
    needed = dict(_FRAMEWORK)
    for kind in KINDS.values():
        key = (kind.group, kind.plural)
        needed[key] = needed.get(key, frozenset()) | kind.verbs
    return needed


class Cluster:
    """Create, read, merge-patch, list and delete plain manifests (dicts)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api

    def _call(self, kind: str, verb: str) -> Any:
        spec = KINDS[kind]
        return getattr(spec.api(self._api), f"{verb}_namespaced_{spec.snake}")

    def _plain(self, model: Any) -> dict[str, Any]:
        return self._api.sanitize_for_serialization(model)  # type: ignore[no-any-return]

    async def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._plain(await self._call(kind, "read")(name, namespace))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unavailable("read", kind, namespace, name, exc) from None

    async def create(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind, namespace, name = _identity(manifest)
        try:
            return self._plain(await self._call(kind, "create")(namespace, manifest))
        except ApiException as exc:
            raise _unavailable("create", kind, namespace, name, exc) from None

    async def patch(self, manifest: dict[str, Any]) -> dict[str, Any]:
        kind, namespace, name = _identity(manifest)
        try:
            patch = self._call(kind, "patch")
            return self._plain(await patch(name, namespace, manifest, _content_type=MERGE_PATCH))
        except ApiException as exc:
            raise _unavailable("patch", kind, namespace, name, exc) from None

    async def delete(self, kind: str, namespace: str, name: str) -> None:
        try:
            await self._call(kind, "delete")(name, namespace, propagation_policy="Background")
        except ApiException as exc:
            if exc.status != 404:
                raise _unavailable("delete", kind, namespace, name, exc) from None

    async def owned(self, kind: str, namespace: str, owner_uid: str) -> list[dict[str, Any]]:
        """The objects of ``kind`` in ``namespace`` that ``owner_uid`` owns."""
        try:
            found = self._plain(await self._call(kind, "list")(namespace))
        except ApiException as exc:
            raise _unavailable("list", kind, namespace, "", exc) from None
        return [
            item
            for item in found.get("items", [])
            if any(
                ref.get("uid") == owner_uid
                for ref in item.get("metadata", {}).get("ownerReferences", [])
            )
        ]

    async def get_custom(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        """One of our own custom resources, or None when it is gone."""
        api = client.CustomObjectsApi(self._api)
        try:
            found = await api.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise _unavailable("read", plural, namespace, name, exc) from None
        return found  # type: ignore[no-any-return]

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: dict[str, Any]
    ) -> None:
        """Merge ``status`` into a custom resource's status subresource."""
        api = client.CustomObjectsApi(self._api)
        try:
            await api.patch_namespaced_custom_object_status(
                GROUP,
                VERSION,
                namespace,
                plural,
                name,
                {"status": status},
                _content_type=MERGE_PATCH,
            )
        except ApiException as exc:
            if exc.status != 404:
                raise _unavailable("patch status of", plural, namespace, name, exc) from None


def _identity(manifest: dict[str, Any]) -> tuple[str, str, str]:
    meta = manifest["metadata"]
    return manifest["kind"], meta["namespace"], meta["name"]


def _unavailable(verb: str, kind: str, namespace: str, name: str, exc: ApiException) -> Unavailable:
    return Unavailable(f"cannot {verb} {kind} {namespace}/{name}: {exc.status} {exc.reason}")
