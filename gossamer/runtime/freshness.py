"""Freshness of datagrams: a captured datagram replayed later changes nothing.

The seal proves who made a datagram, not when: replayed after its sender's
tombstone was reaped, a captured alive claim would bring the sender back on
every node.  So each datagram carries, under the seal, a *stamp*: the
sender's wall clock in microseconds, raised to one more than the last stamp
whenever the clock has not moved on (so a sender's stamps strictly grow,
even across lives at one address while the clock does).  A receiver takes a
datagram only if

* its stamp is at most ``max_age_s`` older than the receiver's clock (a
  replay later than that is *stale*), and
* it has not seen that stamp from that sender, and the stamp is within the
  last 64 it took from the sender (a *replay* otherwise): a window of the
  highest stamp and a 64-bit map below it, as IPsec keeps for sequence
  numbers, so datagrams reordered by up to 64 still count.

A sender's window is kept until its newest stamp is ``max_age_s`` old, when
the age check alone refuses anything older; so the memory is bounded by the
senders heard from in the last ``max_age_s``, and at most ``max_senders``
windows are kept (past that, the window heard from longest ago goes, and is
counted: replays of that sender are then refused by age only).  The clocks
of the nodes must agree within ``max_age_s``; datagrams from a node whose
clock is further behind are refused as stale, and the transport says so.
"""

from __future__ import annotations

__all__ = ["STAMP_BYTES", "Freshness", "Stamper"]

import struct
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Final

STAMP = struct.Struct(">Q")
STAMP_BYTES: Final = STAMP.size
_WINDOW = 64
_FULL = (1 << _WINDOW) - 1


def _wall_us() -> int:
    return time.time_ns() // 1_000


class Stamper:
    """The sender's side: strictly growing stamps, near the wall clock in microseconds."""

    __slots__ = ("_clock", "_last")

    def __init__(self, clock: Callable[[], int] = _wall_us) -> None:
        self._clock = clock
        self._last = 0

    def next(self) -> bytes:
        self._last = max(self._last + 1, self._clock())
        return STAMP.pack(self._last)


class Freshness:
    """The receiver's side: see the module docstring."""

    __slots__ = ("_clock", "_max_age_us", "_max_senders", "_windows", "shed")

    def __init__(
        self, max_age_s: float, max_senders: int, clock: Callable[[], int] = _wall_us
    ) -> None:
        self._max_age_us = int(max_age_s * 1_000_000)
        self._max_senders = max_senders
        self._clock = clock
        self._windows: OrderedDict[str, list[int]] = OrderedDict()  # sender -> [high, map]
        self.shed = 0
        """Windows dropped while still within the age bound (``max_senders`` reached)."""

    def __len__(self) -> int:
        return len(self._windows)

    def check(self, sender: str, stamp: int) -> str | None:
        """None to take the datagram (and remember its stamp); else ``stale`` or ``replayed``."""
        now = self._clock()
        oldest = now - self._max_age_us
        if stamp < oldest:
            return "stale"
        windows = self._windows
        window = windows.get(sender)
        if window is None:
            self._expire(oldest)
            windows[sender] = [stamp, 1]
            if len(windows) > self._max_senders:
                windows.popitem(last=False)
                self.shed += 1
            return None
        high, seen = window
        if stamp > high:
            shift = stamp - high
            window[0] = stamp
            window[1] = ((seen << shift) | 1) & _FULL if shift < _WINDOW else 1
        else:
            back = high - stamp
            if back >= _WINDOW or seen >> back & 1:
                return "replayed"
            window[1] = seen | 1 << back
        windows.move_to_end(sender)
        return None

    def _expire(self, oldest: int) -> None:
        """Forget windows whose newest stamp the age check refuses anyway."""
        windows = self._windows
        while windows:
            sender, (high, _) = next(iter(windows.items()))
            if high >= oldest:
                break
            del windows[sender]
