"""What the tests of ``smartcity up`` share: finding the processes a city left behind."""

from __future__ import annotations

import contextlib
from pathlib import Path


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie is gone for every purpose but its exit status)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def city_processes(folder: Path) -> list[str]:
    """Every live process on the machine whose command line or environment names ``folder``:
    each process of a city names its data folder in one or the other."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            environ = (entry / "environ").read_bytes().decode(errors="replace")
            if (str(folder) in cmdline or str(folder) in environ) and alive(int(entry.name)):
                found.append(f"{entry.name}: {cmdline}")
    return found
