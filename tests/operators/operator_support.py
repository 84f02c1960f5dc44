"""Helpers for running the operator against KMock, the Kubernetes API mock server of kopf's
author.

KMock stores objects and streams watch events over real HTTP, but it is no API server: it
assigns no ``uid``, ``generation`` or ``resourceVersion`` and has no garbage collector, so the
tests seed those and drive changes through the API (create, merge-patch, delete) as kubectl
would.
"""

from __future__ import annotations

import itertools
from typing import Any

import kmock
from kubernetes_asyncio import client

from smartcity.operators.crds import GROUP, VERSION
from smartcity.operators.kube import KINDS

NAMESPACE = "danang"
NATS_URL = "nats://nats.danang:4222"
CUSTOM = {"SmartCity": "smartcities", "EdgeAgent": "edgeagents"}


class VersionedEmulator(kmock.KubernetesEmulator):
    """KMock that, like an API server, gives every write a new ``resourceVersion`` and every
    change of a spec a new ``generation``: kopf tells its own stale events apart by the
    first, and ``observedGeneration`` means something only with the second. Writes are last
    one wins, without optimistic concurrency."""

    _counter = itertools.count(2)

    async def _handle(self, request: Any) -> Any:
        writes = (kmock.action.CREATE, kmock.action.UPDATE)
        if request.resource is not None and request.action in writes:
            version = str(next(self._counter))
            if isinstance(request.data, dict):
                meta = request.data.setdefault("metadata", {})
                meta["resourceVersion"] = version
                if request.action == kmock.action.CREATE:
                    meta.setdefault("generation", 1)
                elif "spec" in request.data and request.subresource is None:
                    meta["generation"] = self._generation(request) + 1
            elif isinstance(request.data, list):
                # KMock replays every stored object when a watch starts, so kopf sees an event
                # twice; its optimistic test of the version would then fail for nothing.
                request.data[:] = [op for op in request.data if op.get("op") != "test"]
                request.data.append(
                    {"op": "replace", "path": "/metadata/resourceVersion", "value": version}
                )
        return await super()._handle(request)

    def _generation(self, request: Any) -> int:
        key = (request.resource, request.namespace, request.name)
        if key not in self.objects or self.objects[key].deleted:
            return 0
        return int(self.objects[key].get("metadata", {}).get("generation") or 0)


def declare_resources(kmock: Any) -> None:
    verbs = {"get", "list", "watch", "create", "patch", "update", "delete"}

    def declare(key: str, kind: str, namespaced: bool, subresources: set[str]) -> None:
        kmock.resources[key] = kmock.ResourceInfo(
            namespaced=namespaced,
            kind=kind,
            singular=kind.lower(),
            verbs=verbs,
            subresources=subresources,
        )

    for kind, plural in CUSTOM.items():
        declare(f"{GROUP}/{VERSION}/{plural}", kind, True, {"status"})
    for spec in KINDS.values():
        declare(f"{spec.api_version}/{spec.plural}", spec.kind, True, set())
    declare("v1/namespaces", "Namespace", False, set())
    declare("v1/events", "Event", True, set())
    declare(
        "apiextensions.k8s.io/v1/customresourcedefinitions",
        "CustomResourceDefinition",
        False,
        set(),
    )


class Kubectl:
    """What a person does with kubectl, through the API: create, patch, delete, read."""

    def __init__(self, kmock: Any, api: client.ApiClient) -> None:
        self.kmock = kmock
        self.custom = client.CustomObjectsApi(api)
        self.apps = client.AppsV1Api(api)

    def get(self, resource: str, name: str) -> dict[str, Any] | None:
        key = (kmock.resource(resource), NAMESPACE, name)
        if key not in self.kmock.objects or self.kmock.objects[key].deleted:
            return None
        return dict(self.kmock.objects[key].raw)

    def owned_names(self, resource: str) -> set[str]:
        return {
            name
            for (res, namespace, name), item in list(self.kmock.objects.items())
            if str(res.plural) == resource.rsplit("/", 1)[-1]
            and namespace == NAMESPACE
            and not item.deleted
        }

    async def create(self, plural: str, body: dict[str, Any]) -> None:
        await self.custom.create_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, body)

    async def patch(self, plural: str, name: str, body: dict[str, Any]) -> None:
        await self.custom.patch_namespaced_custom_object(
            GROUP,
            VERSION,
            NAMESPACE,
            plural,
            name,
            body,
            _content_type="application/merge-patch+json",
        )

    async def delete(self, plural: str, name: str) -> None:
        await self.custom.delete_namespaced_custom_object(GROUP, VERSION, NAMESPACE, plural, name)

    async def deployment_status(self, name: str, status: dict[str, Any]) -> None:
        """What the Deployment controller would write as the pods come up."""
        await self.apps.patch_namespaced_deployment_status(
            name, NAMESPACE, {"status": status}, _content_type="application/merge-patch+json"
        )
