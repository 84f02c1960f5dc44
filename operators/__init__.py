"""The kopf operator that deploys the platform on Kubernetes."""
