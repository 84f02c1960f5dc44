"""The two pluggy markers of the ``smartcity`` hook namespace.

Kept apart from the hook specifications so that a plugin importing ``hookimpl`` does not
pull in anything else, and so that the name ``smartcity`` is written in one place.
"""

from __future__ import annotations

import pluggy

PROJECT = "smartcity"
ENTRY_POINT_GROUP = "smartcity.fields"
"""Installed distributions register a field plugin under this entry-point group."""

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
