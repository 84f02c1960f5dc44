"""The console tests start real services the way the identity tests do, with the helpers of
``tests/services/identity/identity_support.py``; that folder is made importable here so the
helpers are shared, not copied."""

from __future__ import annotations

import sys
from pathlib import Path

_IDENTITY_TESTS = str(Path(__file__).resolve().parents[1] / "identity")
if _IDENTITY_TESTS not in sys.path:
    sys.path.append(_IDENTITY_TESTS)
