"""How every command reports a problem: one red line on stderr, then an exit code.

Exit codes: 1 when something outside the command failed (a device, a server), 2 when what
the user gave is wrong (a profile, the configuration, an option).
"""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

_stderr = Console(stderr=True, soft_wrap=True)


def fail(message: object, code: int = 1) -> NoReturn:
    """Print ``error: message`` (not wrapped, so it can be copied) and exit with ``code``."""
    _stderr.print(f"[red]error:[/red] {escape(str(message))}", highlight=False)
    raise typer.Exit(code)
