"""Errors of the field-plugin host.

Every refusal names the plugin the way an operator can find it: the entry-point name (what
``plugins.enabled``/``plugins.disabled`` take) and the distribution that installed it.
"""

from __future__ import annotations

from collections.abc import Sequence


class FieldHostError(Exception):
    """The plugin host cannot provide the fields it was asked for."""


class PluginError(FieldHostError):
    """One plugin breaks the field contract. ``problems`` lists every mistake found in it,
    so that its author can fix them in one go."""

    def __init__(self, plugin: str, origin: str, problems: Sequence[str]) -> None:
        self.plugin = plugin
        self.origin = origin
        self.problems = tuple(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"field plugin {origin} is refused:\n{lines}")


class FieldLoadError(FieldHostError):
    """One or more plugins were refused, so the platform does not start: a city platform
    running with a field silently missing is worse than one that says why it stopped."""

    def __init__(self, errors: Sequence[PluginError]) -> None:
        self.errors = tuple(errors)
        names = ", ".join(repr(error.plugin) for error in self.errors)
        details = "\n".join(str(error) for error in self.errors)
        super().__init__(f"{len(self.errors)} field plugin(s) refused ({names}):\n{details}")


class DeriveError(FieldHostError):
    """A plugin's ``derive`` failed or returned something other than readings of its own
    metrics; raised on the ingest path so the caller can log it and carry on."""
