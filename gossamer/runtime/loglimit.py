"""Log lines an operator needs, at a rate a log can hold.

A peer's bad packets, a client's malformed requests, a seed that does not
answer: each is worth one line, not one per packet.  :class:`LogLimiter`
lets one line per key through per interval and counts the ones it held back,
so the next line can say how many there were.  Its keys are bounded: past
``max_keys`` the key heard of longest ago is forgotten (it may then log once
more, early).
"""

from __future__ import annotations

__all__ = ["LogLimiter"]

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable


class LogLimiter:
    """One line per key per ``interval_s``; see the module docstring."""

    __slots__ = ("_clock", "_interval_s", "_keys", "_max_keys")

    def __init__(
        self,
        interval_s: float = 60.0,
        *,
        max_keys: int = 256,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._interval_s = interval_s
        self._max_keys = max_keys
        self._clock = clock
        self._keys: OrderedDict[Hashable, list[float]] = OrderedDict()  # key -> [last, held]

    def allow(self, key: Hashable) -> int | None:
        """None to stay quiet; else log now, and the number of lines held back since."""
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None:
            self._keys.move_to_end(key)
            if now - entry[0] < self._interval_s:
                entry[1] += 1
                return None
            held = int(entry[1])
            entry[0], entry[1] = now, 0
            return held
        self._keys[key] = [now, 0]
        if len(self._keys) > self._max_keys:
            self._keys.popitem(last=False)
        return 0

    @staticmethod
    def since(held: int) -> str:
        """What a line adds for the ``held`` lines before it: `` (3 more since the last)``."""
        return f" ({held} more since the last)" if held else ""
