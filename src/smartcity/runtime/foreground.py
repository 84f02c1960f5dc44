"""Running an asyncio program in the foreground until Ctrl-C or SIGTERM.

Every long-running command (simulators, agents, services) stops the same way: the first
signal sets a stop event and the program shuts down in order; a second one is left to the
default handler, so a stuck shutdown can still be interrupted.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)``; SIGINT/SIGTERM set ``stop``."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stop_once() -> None:
            stop.set()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop_once)
        await main(stop)

    asyncio.run(runner())
