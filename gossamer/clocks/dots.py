"""Dots and causal contexts: exactly which events a replica has seen.

A *dot* ``(node, n)`` names the ``n``-th event issued by ``node``, as in
Preguiça, Baquero, Almeida, Fonte and Gonçalves, *Dotted Version Vectors:
Logical Clocks for Optimistic Replication*, 2010.  A *causal context* is a set
of dots, the form Almeida, Shoker and Baquero use in *Delta State Replicated
Data Types* (JPDC 111, 2018, section 5.1) to say which updates a delta-CRDT
state has seen.  Delta-state replication delivers updates out of order, so a
context is not always a prefix per node: it is stored as a version vector
(every node's contiguous prefix ``1..v[node]``) plus a *dot cloud* of the dots
beyond that prefix, with gaps below them.  :meth:`CausalContext.compact`
folds cloud dots that close a gap back into the vector, which keeps the cloud
as small as the gaps that remain.

Invariants relied on:

* No cloud dot is covered by the vector: the constructor drops any it is
  given.  The constructor does not compact, so an uncompacted context (a cloud
  dot at ``v[node] + 1``) can be built, and :meth:`~CausalContext.compact`
  can be checked never to change which dots are contained.
* Equality, hashing and :meth:`~CausalContext.to_wire` use the compacted form,
  so two contexts are equal exactly when they contain the same dots, and equal
  contexts encode to equal bytes.  :attr:`~CausalContext.vector` and
  :attr:`~CausalContext.cloud` show the stored form, which may be uncompacted.
* Every operation returns a new (or unchanged, shared) immutable value; the
  results of :meth:`~CausalContext.add`, :meth:`~CausalContext.merge` and
  :meth:`~CausalContext.next_dot` are compacted.
"""

from __future__ import annotations

__all__ = ["MAX_WIRE_CLOUD_DOTS", "CausalContext", "Dot"]

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from gossamer.clocks._checks import (
    check_counter,
    check_node,
    describe,
    next_counter,
    wire_counter,
    wire_node,
    wire_pair,
)
from gossamer.clocks.vv import VersionVector
from gossamer.errors import InvalidMessage, WireError, WireReason

MAX_WIRE_CLOUD_DOTS = 1_000_000
"""Most cloud dots :meth:`CausalContext.from_wire` accepts.

A cloud holds one dot per event received ahead of a gap, so in a healthy
cluster it stays tiny; the codec's frame size limit bites long before this
bound, which only keeps a decoder's work finite under a generous frame limit.
"""


@dataclass(frozen=True, slots=True, order=True)
class Dot:
    """The ``counter``-th event issued by ``node``; ordered by node, then counter."""

    node: str
    """Name of the node that issued the event (1-128 characters)."""
    counter: int
    """Position of the event in ``node``'s history, in ``1..2**63-1``."""

    def __post_init__(self) -> None:
        check_node(self.node, "Dot.node")
        check_counter(self.counter, "Dot.counter")

    def to_wire(self) -> list[object]:
        """Encode as ``[node, counter]``."""
        return [self.node, self.counter]

    @classmethod
    def from_wire(cls, raw: object) -> Dot:
        """Decode ``[node, counter]`` from a peer; raises only ``WireError``."""
        node, counter = wire_pair(raw, "Dot")
        return cls(wire_node(node, "Dot"), wire_counter(counter, "Dot"))


class CausalContext:
    """An immutable set of dots: a version vector plus a cloud of dots beyond it."""

    __slots__ = ("_cloud", "_compacted", "_hash", "_known_compact", "_vector")

    _vector: VersionVector
    _cloud: frozenset[Dot]
    # A compact context flags itself rather than pointing ``_compacted`` at
    # itself: a self-reference would leave every context to the cycle collector.
    _known_compact: bool
    _compacted: CausalContext | None
    _hash: int | None

    def __init__(self, vector: VersionVector | None = None, cloud: Iterable[Dot] = ()) -> None:
        """Build from a vector and extra dots; dots the vector already covers are dropped."""
        if vector is None:
            vector = VersionVector()
        elif not isinstance(vector, VersionVector):
            raise InvalidMessage(
                f"CausalContext: vector must be a VersionVector, got {describe(vector)}"
            )
        if isinstance(cloud, str | bytes) or not isinstance(cloud, Iterable):
            raise InvalidMessage(
                f"CausalContext: cloud must be an iterable of Dot, got {describe(cloud)}"
            )
        dots: list[Dot] = []
        for dot in cloud:
            if not isinstance(dot, Dot):
                raise InvalidMessage(f"CausalContext: cloud holds {describe(dot)}, not a Dot")
            dots.append(dot)
        self._init(vector, _uncovered(vector, frozenset(dots)))

    def _init(self, vector: VersionVector, cloud: frozenset[Dot]) -> None:
        object.__setattr__(self, "_vector", vector)
        object.__setattr__(self, "_cloud", cloud)
        object.__setattr__(self, "_known_compact", not cloud)
        object.__setattr__(self, "_compacted", None)
        object.__setattr__(self, "_hash", None)

    @classmethod
    def _trusted(cls, vector: VersionVector, cloud: frozenset[Dot]) -> CausalContext:
        """Wrap validated parts whose cloud holds no dot the vector covers."""
        context = object.__new__(cls)
        context._init(vector, cloud)
        return context

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"CausalContext is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"CausalContext is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[CausalContext], tuple[VersionVector, frozenset[Dot]]]:
        # The __setattr__ guard defeats the default slot-restoring pickle path.
        return (CausalContext, (self._vector, self._cloud))

    # -- reading -----------------------------------------------------------

    @property
    def vector(self) -> VersionVector:
        """The stored contiguous prefixes (uncompacted if the context was built so)."""
        return self._vector

    @property
    def cloud(self) -> frozenset[Dot]:
        """The stored dots beyond the vector; none of them is covered by it."""
        return self._cloud

    @property
    def is_compact(self) -> bool:
        """Whether no cloud dot could be folded into the vector."""
        return self.compact() is self

    def contains(self, dot: Dot) -> bool:
        """Whether the event ``dot`` has been seen."""
        if not isinstance(dot, Dot):
            raise InvalidMessage(f"CausalContext.contains: expected a Dot, got {describe(dot)}")
        return dot.counter <= self._vector.get(dot.node) or dot in self._cloud

    def __contains__(self, dot: object) -> bool:
        return isinstance(dot, Dot) and self.contains(dot)

    def max_counter(self, node: str) -> int:
        """The largest counter of ``node`` seen, in the vector or the cloud; 0 if none."""
        check_node(node, "CausalContext.max_counter")
        # Cloud dots are never covered by the vector, so any of them is larger.
        top = max((dot.counter for dot in self._cloud if dot.node == node), default=0)
        return top or self._vector.get(node)

    # -- building ----------------------------------------------------------

    def compact(self) -> CausalContext:
        """The same set of dots with every gap-closing cloud dot folded into the vector."""
        if self._known_compact:
            return self
        if self._compacted is not None:
            return self._compacted
        by_node: dict[str, list[int]] = {}
        for dot in self._cloud:
            by_node.setdefault(dot.node, []).append(dot.counter)
        entries: dict[str, int] | None = None
        for node, counters in by_node.items():
            top = self._vector.get(node)
            counters.sort()
            # The cloud is a set and holds nothing the vector covers, so the
            # sorted counters are distinct and each is above ``top``.
            grown = top
            for counter in counters:
                if counter != grown + 1:
                    break
                grown = counter
            if grown != top:
                if entries is None:
                    entries = dict(self._vector._entries)
                entries[node] = grown
        if entries is None:
            object.__setattr__(self, "_known_compact", True)
            return self
        vector = VersionVector._trusted(entries)
        result = CausalContext._trusted(vector, _uncovered(vector, self._cloud))
        object.__setattr__(result, "_known_compact", True)
        object.__setattr__(self, "_compacted", result)
        return result

    def add(self, dot: Dot) -> CausalContext:
        """The compacted context that has also seen ``dot``."""
        if not isinstance(dot, Dot):
            raise InvalidMessage(f"CausalContext.add: expected a Dot, got {describe(dot)}")
        if self.contains(dot):
            return self.compact()
        return CausalContext._trusted(self._vector, self._cloud | {dot}).compact()

    def next_dot(self, node: str) -> tuple[Dot, CausalContext]:
        """A fresh dot for a new event of ``node``, and the compacted context including it.

        The counter is one past the largest ``node`` has anywhere in this
        context, so the dot is new to it; it is globally unique only when
        ``node`` is the local node and this context has seen all its events.
        """
        dot = Dot(node, next_counter(self.max_counter(node), "CausalContext.next_dot"))
        return dot, self.add(dot)

    def merge(self, other: CausalContext) -> CausalContext:
        """The compacted union of both sets of dots."""
        if not isinstance(other, CausalContext):
            raise InvalidMessage(
                f"CausalContext.merge: expected a CausalContext, got {describe(other)}"
            )
        vector = self._vector.merge(other._vector)
        cloud = _uncovered(vector, self._cloud | other._cloud)
        return CausalContext._trusted(vector, cloud).compact()

    # -- value semantics ---------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CausalContext):
            return NotImplemented
        mine, theirs = self.compact(), other.compact()
        return mine._vector == theirs._vector and mine._cloud == theirs._cloud

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            compacted = self.compact()
            value = hash((compacted._vector, compacted._cloud))
            object.__setattr__(self, "_hash", value)
        return value

    def __repr__(self) -> str:
        return f"CausalContext({self._vector!r}, {sorted(self._cloud)!r})"

    # -- wire ----------------------------------------------------------------

    def to_wire(self) -> list[object]:
        """Encode the compacted form as ``[vector, [[node, counter], ...]]``, dots sorted."""
        compacted = self.compact()
        return [compacted._vector.to_wire(), [dot.to_wire() for dot in sorted(compacted._cloud)]]

    @classmethod
    def from_wire(cls, raw: object) -> CausalContext:
        """Decode ``[vector, [[node, counter], ...]]`` from a peer; raises only ``WireError``.

        Dot order, duplicates, covered dots and an uncompacted cloud are
        tolerated: none of them changes which dots the context contains.
        """
        raw_vector, raw_cloud = wire_pair(raw, "CausalContext")
        vector = VersionVector.from_wire(raw_vector)
        if not isinstance(raw_cloud, list | tuple):
            raise WireError(
                WireReason.SCHEMA,
                f"CausalContext: cloud must be an array, got {describe(raw_cloud)}",
            )
        if len(raw_cloud) > MAX_WIRE_CLOUD_DOTS:
            raise WireError(
                WireReason.SCHEMA,
                f"CausalContext: {len(raw_cloud)} cloud dots,"
                f" over the limit of {MAX_WIRE_CLOUD_DOTS}",
            )
        cloud = frozenset(Dot.from_wire(item) for item in raw_cloud)
        return cls._trusted(vector, _uncovered(vector, cloud))


def _uncovered(vector: VersionVector, dots: frozenset[Dot]) -> frozenset[Dot]:
    """The dots of ``dots`` that ``vector`` does not cover (``dots`` itself if that is all)."""
    kept = frozenset(dot for dot in dots if dot.counter > vector.get(dot.node))
    return dots if len(kept) == len(dots) else kept
