"""The transmit-limited queue: news to piggyback, each item sent a bounded number of times.

Infection-style dissemination (SWIM §4.1; memberlist's TransmitLimitedQueue)
sends every piece of news a fixed number of times, piggybacked on whatever
messages a node sends anyway.  The queue keeps one item per key -- newer news
about a key replaces older -- and hands out the least-sent items first, the
newest first among equals, so fresh news spreads before old news is repeated.
SWIM's member updates use it; Plumtree's lazy announcements and the
registries' deltas have the same shape.

Invariants:

* One entry per key; ``push`` replaces the entry of its key (and restarts its
  count).
* Bounded: past ``limit`` entries the most-sent, oldest entry is shed, and an
  item larger than ``max_item_bytes`` (it could never fit a message) is shed
  at once; both are counted in :attr:`TransmitQueue.shed`.
* ``take`` is deterministic: the order depends only on the pushes and takes,
  never on hashing, and items themselves are never compared.
"""

from __future__ import annotations

__all__ = ["TransmitQueue"]

from collections.abc import Hashable
from typing import Generic, TypeVar

from sortedcontainers import SortedList

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

# (transmits, -id, key, value, size): (transmits, -id) is unique, so keys and
# values are never compared.
_Item = tuple[int, int, object, object, int]


class TransmitQueue(Generic[K, V]):
    """Items keyed by ``K``, taken least-sent first; see the module docstring.

    ``min_item_bytes`` is the size of the smallest item that can exist: a
    take stops once less room than that is left.  ``max_misses`` bounds how
    many items a take passes over for size before it gives up, so one large
    message does not scan the whole queue.
    """

    __slots__ = (
        "_by_key",
        "_next_id",
        "_order",
        "limit",
        "max_item_bytes",
        "max_misses",
        "min_item_bytes",
        "shed",
    )

    def __init__(
        self, limit: int, max_item_bytes: int, *, min_item_bytes: int = 1, max_misses: int = 32
    ) -> None:
        self.limit = limit
        self.max_item_bytes = max_item_bytes
        self.min_item_bytes = min_item_bytes
        self.max_misses = max_misses
        self.shed = 0
        """Items dropped before they were sent enough times (the queue was full,
        or the item could never fit)."""
        self._next_id = 0
        self._by_key: dict[K, _Item] = {}
        self._order: SortedList = SortedList()

    def __len__(self) -> int:
        return len(self._by_key)

    def push(self, key: K, value: V, size: int) -> None:
        """Queue ``value`` (``size`` bytes on the wire) under ``key``, replacing older news."""
        old = self._by_key.pop(key, None)
        if old is not None:
            self._order.remove(old)
        self._next_id += 1
        if size > self.max_item_bytes:
            self.shed += 1
            return
        item: _Item = (0, -self._next_id, key, value, size)
        self._by_key[key] = item
        self._order.add(item)
        while len(self._by_key) > self.limit:
            worst = self._order.pop()
            del self._by_key[worst[2]]
            self.shed += 1

    def take(self, budget: int, transmits: int, skip: frozenset[K] = frozenset()) -> list[V]:
        """Items that fit in ``budget`` bytes, least-sent first, none keyed in ``skip``.

        Each counts one transmission; an item leaves the queue once it has been
        taken ``transmits`` times.
        """
        chosen: list[_Item] = []
        misses = 0
        for item in self._order:
            if budget < self.min_item_bytes:
                break
            if item[4] <= budget and item[2] not in skip:
                chosen.append(item)
                budget -= item[4]
            else:
                misses += 1
                if misses > self.max_misses:  # the rest waits for a message of its own
                    break
        by_key = self._by_key
        for item in chosen:
            self._order.remove(item)
            key: K = item[2]  # type: ignore[assignment]
            sent = item[0] + 1
            if sent >= transmits:
                del by_key[key]
            else:
                again: _Item = (sent, item[1], key, item[3], item[4])
                by_key[key] = again
                self._order.add(again)
        return [item[3] for item in chosen]  # type: ignore[misc]

    def pending(self, key: K) -> V | None:
        """The item queued under ``key``, if any."""
        item = self._by_key.get(key)
        return None if item is None else item[3]  # type: ignore[return-value]
