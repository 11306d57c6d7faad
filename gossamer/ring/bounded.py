"""Consistent hashing with bounded loads, for a known set of items.

Mirrokni, Thorup and Zadimoghaddam, *Consistent Hashing with Bounded Loads*
(SODA 2018).  Plain consistent hashing balances the key *space*; the items
that land in it can still pile up on one node.  With bounded loads every node
has a capacity, ``ceil((1 + epsilon) * m * w / W)`` for ``m`` items, a node of
weight ``w`` and total weight ``W`` (``ceil((1 + epsilon) * m / n)`` when the
weights are equal), and an item that lands on a full node goes on clockwise
to the first node with room.

The algorithm, as the paper states it:

* Items are placed one at a time in a fixed order that every node agrees on:
  here, the order of their hashes (ties by their bytes), so the placement is
  a pure function of the ring and the set of items, whatever order the
  caller lists them in.
* Each item starts at the first point at or after its hash and walks the
  points clockwise until a node has room.  The capacities add up to at least
  ``(1 + epsilon) * m``, so the walk always ends.  The paper bounds the
  expected length of the walk, and the extra items moved when a node or an
  item comes or goes, by functions of ``epsilon`` alone: both grow as
  ``epsilon`` shrinks, not with the number of items or nodes.

Invariants: no node exceeds its cap; a node is skipped only while it is full;
the result depends only on the ring, the items and ``epsilon``.

Cost: ``O(m log m)`` to hash and order the items, then ``O(m + walk)`` to
place them.  ``benchmarks/ring.py`` measures the balance and the movement.
"""

from __future__ import annotations

__all__ = ["DEFAULT_EPSILON", "BoundedPlacement", "place_bounded"]

import math
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from fractions import Fraction
from typing import TYPE_CHECKING, Final, Generic, TypeVar

from gossamer.errors import InvalidMessage
from gossamer.ring.hashing import key_bytes, key_hash

if TYPE_CHECKING:
    from gossamer.ring.ring import Ring

N = TypeVar("N", bound=str)

_MAX_EPSILON: Final = 1_000_000

DEFAULT_EPSILON: Final = 0.25
"""Each node takes at most 25% more than its fair share of the items."""

Item = str | bytes


class BoundedPlacement(Mapping[Item, N], Generic[N]):
    """Where each item went: a read-only mapping from item to node.

    ``caps`` and ``loads`` say how many items each node may take and took.
    """

    __slots__ = ("_assignment", "caps", "epsilon", "loads")

    def __init__(
        self,
        assignment: dict[Item, N],
        caps: dict[N, int],
        loads: dict[N, int],
        epsilon: float,
    ) -> None:
        self._assignment = assignment
        self.caps = caps
        self.loads = loads
        self.epsilon = epsilon

    def __getitem__(self, item: Item) -> N:
        return self._assignment[item]

    def __iter__(self) -> Iterator[Item]:
        return iter(self._assignment)

    def __len__(self) -> int:
        return len(self._assignment)

    def moved(self, other: BoundedPlacement[N]) -> dict[Item, tuple[N, N]]:
        """Items placed in both whose node differs: item -> (node here, node in ``other``)."""
        theirs = other._assignment
        return {
            item: (node, theirs[item])
            for item, node in self._assignment.items()
            if item in theirs and theirs[item] != node
        }

    def __repr__(self) -> str:
        return f"BoundedPlacement({len(self._assignment)} items, epsilon={self.epsilon})"


def capacities(ring: Ring[N], items: int, epsilon: float) -> dict[N, int]:
    """Each node's cap: ``ceil((1 + epsilon) * items * weight / total weight)``, exactly.

    Numbers are read as the decimals they print as (``repr``): the float 0.2
    is a little over 1/5, so at its binary value the cap for 5 items on one
    node with epsilon 0.2 would come out 7, not ``ceil(1.2 * 5) = 6``.
    """
    weights = ring.weights
    total = sum(_decimal(w) for w in weights.values())
    factor = (1 + _decimal(epsilon)) * items
    return {name: math.ceil(factor * _decimal(w) / total) for name, w in weights.items()}


def _decimal(x: float) -> Fraction:
    """``x`` as the shortest decimal that round-trips, so 0.1 is 1/10."""
    return Fraction(repr(x))


def place_bounded(
    ring: Ring[N], items: Iterable[Item], *, epsilon: float = DEFAULT_EPSILON
) -> BoundedPlacement[N]:
    """Place ``items`` (str or bytes; repeats count once) on ``ring`` with bounded loads."""
    if (
        isinstance(epsilon, bool)
        or not isinstance(epsilon, int | float)
        or not 0 <= epsilon <= _MAX_EPSILON  # also refuses nan, inf and huge ints
    ):
        raise InvalidMessage(
            f"epsilon must be a number in [0, {_MAX_EPSILON}], got {epsilon!r:.40}"
        )
    if isinstance(items, str | bytes):
        raise InvalidMessage("items must be an iterable of keys, not a single key")
    given = list(items)
    # Checked before deduplicating, which would fail first on an unhashable item.
    for item in given:
        if not isinstance(item, str | bytes):
            raise InvalidMessage(f"an item must be str or bytes, got {type(item).__name__}")
    unique = list(dict.fromkeys(given))
    # (hash, bytes, is-str, index): "a" and b"a" are two items, ordered too.
    order = sorted(
        (key_hash(item), key_bytes(item), isinstance(item, str), index)
        for index, item in enumerate(unique)
    )
    caps = capacities(ring, len(order), epsilon) if order else {n: 0 for n in ring.nodes}
    loads = dict.fromkeys(caps, 0)
    assignment: dict[Item, N] = {}
    if order:
        points = ring._built()
        hashes, owners = points.hashes, points.owners
        count = len(hashes)
        start = 0
        for h, _, _, index in order:
            item = unique[index]
            # Items come in hash order, so each search starts where the last began.
            start = bisect_left(hashes, h, start)
            i = start
            while True:
                name: N = owners[i % count]  # type: ignore[assignment]
                if loads[name] < caps[name]:
                    break
                i += 1
            loads[name] += 1
            assignment[item] = name
    return BoundedPlacement(assignment, caps, loads, float(epsilon))
