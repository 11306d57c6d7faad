"""Helpers for tests that run real nodes on an event loop.

Real sockets and threads take their time; a test waits for a condition,
never for a fixed delay, and says what it waited for when it gives up.
"""

from __future__ import annotations

__all__ = ["eventually"]

import asyncio
import time
from collections.abc import Callable


async def eventually(
    predicate: Callable[[], bool], what: str = "the condition holds", timeout: float = 30.0
) -> None:
    """Wait until ``predicate()`` holds, checking every 0.05 s.

    Raises ``AssertionError`` naming ``what`` after ``timeout`` seconds.
    The default is far above what any condition needs on an idle machine, so
    a loaded CI machine does not make a test flaky.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting until {what}")
        await asyncio.sleep(0.05)
