"""The kopf operator that deploys the platform on Kubernetes.

``model`` and ``crds`` say what a ``SmartCity`` and an ``EdgeAgent`` are; ``services`` lists
the services a city can run; ``city``, ``edge`` and ``pods`` build their children from a spec,
without an API server; ``status`` turns children into conditions; ``kube`` is the API as the
operator uses it; ``reconcile`` brings the cluster to a spec; ``handlers`` registers the thin
kopf handlers that ``smartcity operator`` runs. See README.md beside this file.
"""
