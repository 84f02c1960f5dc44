"""Da Nang smart-city platform: one import root for every part of it.

Layout of the package (the repository's folders map into it):

- ``smartcity.runtime``: what every process shares (configuration, logging, OpenTelemetry,
  the embedded NATS server, the bus client, gRPC bootstrap).
- ``smartcity.fields``: the pluggy host that loads the smart-field plugins.
- ``smartcity.<api>.v1``: Python code generated from ``proto/`` (the public API).
- ``smartcity.plugins``: the sixteen fields the city ships, registered like any third party's.
- ``smartcity.services``, ``smartcity.agents``, ``smartcity.operators``: the processes.
- ``smartcity.cli``: the ``smartcity`` command.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("smartcity")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
