"""Version vectors: which events of each node a replica has seen.

Version vectors (Parker et al., *Detection of Mutual Inconsistency in
Distributed Systems*, 1983), in the form Preguiça, Baquero, Almeida, Fonte and
Gonçalves build on in *Dotted Version Vectors: Logical Clocks for Optimistic
Replication*, 2010.  A vector maps each node to the number of that node's
events seen, events being numbered 1, 2, 3... per node.  Vectors form a
join-semilattice under pointwise maximum (:meth:`VersionVector.merge`), and
the pointwise order tells whether one history includes another or whether the
two are concurrent (:meth:`VersionVector.compare`).

Invariants relied on:

* A missing node means 0.  Zero entries are never stored: the constructor
  drops them, so ``VersionVector({"a": 0}) == VersionVector()``, and equality,
  hashing and :meth:`~VersionVector.__len__` see only positive entries.
* Stored counters are ints in ``1..2**63-1``; node names are str of 1-128
  characters.  Every vector that can be built survives the wire.
* Values are immutable: the internal dict is built once, never handed out and
  never changed, so one vector may be shared by any number of messages and
  states.  Operations that change nothing may return ``self``.
* :meth:`~VersionVector.to_wire` lists nodes in sorted order, so equal vectors
  encode to equal bytes.

The partial order is exposed as :meth:`~VersionVector.compare` and
:meth:`~VersionVector.dominates` rather than ``<``/``<=``: with those
operators, ``sorted()`` and ``max()`` would silently give arbitrary answers on
concurrent vectors.
"""

from __future__ import annotations

__all__ = ["MAX_WIRE_ENTRIES", "Ordering", "VersionVector"]

from collections.abc import Mapping
from enum import Enum
from typing import Any

from gossamer.clocks._checks import (
    check_counter,
    check_node,
    describe,
    next_counter,
    wire_counter,
    wire_node,
)
from gossamer.errors import InvalidMessage, WireError, WireReason

MAX_WIRE_ENTRIES = 1_000_000
"""Most entries :meth:`VersionVector.from_wire` accepts.

The codec's frame size limit is the first defence (an entry costs at least 3
bytes); this bound keeps a decoder's work finite even under a generous one.
A cluster of 10,000 nodes needs 10,000 entries.
"""


class Ordering(Enum):
    """How two histories relate, as :meth:`VersionVector.compare` reports it."""

    BEFORE = "before"
    """The left vector is strictly included in the right one."""
    AFTER = "after"
    """The left vector strictly includes the right one."""
    EQUAL = "equal"
    """Both vectors hold the same entries."""
    CONCURRENT = "concurrent"
    """Each vector has seen an event the other has not."""


class VersionVector:
    """An immutable map from node name to the count of that node's events seen."""

    __slots__ = ("_entries", "_hash", "_sorted")

    _entries: dict[str, int]
    _hash: int | None
    _sorted: tuple[tuple[str, int], ...] | None

    def __init__(self, entries: Mapping[str, int] | None = None) -> None:
        """Copy ``entries``, validating every pair and dropping zero counters."""
        clean: dict[str, int] = {}
        if entries is not None:
            if not isinstance(entries, Mapping):
                raise InvalidMessage(
                    f"VersionVector: expected a mapping of node to counter, got {describe(entries)}"
                )
            for node, counter in entries.items():
                check_node(node, "VersionVector")
                if check_counter(counter, f"VersionVector[{node!r}]", minimum=0):
                    clean[node] = counter
        self._init(clean)

    def _init(self, entries: dict[str, int]) -> None:
        object.__setattr__(self, "_entries", entries)
        object.__setattr__(self, "_hash", None)
        object.__setattr__(self, "_sorted", None)

    @classmethod
    def _trusted(cls, entries: dict[str, int]) -> VersionVector:
        """Wrap a dict this module built and already validated; the dict must not escape."""
        vector = object.__new__(cls)
        vector._init(entries)
        return vector

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"VersionVector is immutable; cannot set {name!r}")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"VersionVector is immutable; cannot delete {name!r}")

    def __reduce__(self) -> tuple[type[VersionVector], tuple[dict[str, int]]]:
        # The __setattr__ guard defeats the default slot-restoring pickle path.
        return (VersionVector, (dict(self._entries),))

    # -- reading -----------------------------------------------------------

    def get(self, node: str) -> int:
        """The count of ``node``'s events seen; 0 if none."""
        return self._entries.get(node, 0)

    def items(self) -> tuple[tuple[str, int], ...]:
        """The ``(node, counter)`` pairs, sorted by node."""
        pairs = self._sorted
        if pairs is None:
            pairs = tuple(sorted(self._entries.items()))
            object.__setattr__(self, "_sorted", pairs)
        return pairs

    def nodes(self) -> tuple[str, ...]:
        """The nodes with a positive counter, sorted."""
        return tuple(node for node, _ in self.items())

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, node: object) -> bool:
        """Whether ``node`` has a positive counter."""
        return node in self._entries

    # -- the lattice -------------------------------------------------------

    def increment(self, node: str) -> VersionVector:
        """A copy that has seen one more event of ``node``: the stamp of a local update."""
        check_node(node, "VersionVector.increment")
        entries = dict(self._entries)
        entries[node] = next_counter(entries.get(node, 0), "VersionVector.increment")
        return VersionVector._trusted(entries)

    def merge(self, other: VersionVector) -> VersionVector:
        """The pointwise maximum: the least vector that has seen both histories."""
        _check_vector(other, "VersionVector.merge")
        big, small = (self, other) if len(self) >= len(other) else (other, self)
        base = big._entries
        merged: dict[str, int] | None = None
        for node, counter in small._entries.items():
            if counter > base.get(node, 0):
                if merged is None:
                    merged = dict(base)
                merged[node] = counter
        # Sharing the dominating operand is safe because vectors never change.
        return big if merged is None else VersionVector._trusted(merged)

    def compare(self, other: VersionVector) -> Ordering:
        """How this history relates to ``other``'s, in one pass over both."""
        _check_vector(other, "VersionVector.compare")
        mine, theirs = self._entries, other._entries
        ahead = behind = False
        shared = 0
        for node, counter in mine.items():
            their = theirs.get(node)
            if their is None:
                ahead = True
                continue
            shared += 1
            if counter > their:
                ahead = True
            elif counter < their:
                behind = True
            if ahead and behind:
                return Ordering.CONCURRENT
        # Any node only ``other`` has is an event we have not seen, since
        # zero counters are never stored.
        if shared < len(theirs):
            behind = True
        if ahead:
            return Ordering.CONCURRENT if behind else Ordering.AFTER
        return Ordering.BEFORE if behind else Ordering.EQUAL

    def dominates(self, other: VersionVector) -> bool:
        """Whether this vector has seen everything ``other`` has (``EQUAL`` or ``AFTER``)."""
        _check_vector(other, "VersionVector.dominates")
        if len(other) > len(self):
            return False
        mine = self._entries
        return all(counter <= mine.get(node, 0) for node, counter in other._entries.items())

    # -- value semantics ---------------------------------------------------

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, VersionVector):
            return NotImplemented
        return self._entries == other._entries

    def __hash__(self) -> int:
        value = self._hash
        if value is None:
            value = hash(frozenset(self._entries.items()))
            object.__setattr__(self, "_hash", value)
        return value

    def __repr__(self) -> str:
        return f"VersionVector({dict(self.items())!r})"

    # -- wire ----------------------------------------------------------------

    def to_wire(self) -> dict[str, int]:
        """Encode as a map of node to counter, keys inserted in sorted order."""
        return dict(self.items())

    @classmethod
    def from_wire(cls, raw: object) -> VersionVector:
        """Decode a map of node to counter from a peer; raises only ``WireError``.

        A zero counter is refused rather than dropped: :meth:`to_wire` never
        writes one, so a peer that sends one is not speaking this format.
        """
        if not isinstance(raw, dict):
            raise WireError(
                WireReason.SCHEMA, f"VersionVector: expected a map, got {describe(raw)}"
            )
        if len(raw) > MAX_WIRE_ENTRIES:
            raise WireError(
                WireReason.SCHEMA,
                f"VersionVector: {len(raw)} entries, over the limit of {MAX_WIRE_ENTRIES}",
            )
        entries: dict[str, int] = {}
        for node, counter in raw.items():
            entries[wire_node(node, "VersionVector")] = wire_counter(counter, "VersionVector")
        return cls._trusted(entries)


def _check_vector(value: object, what: str) -> None:
    if not isinstance(value, VersionVector):
        raise InvalidMessage(f"{what}: expected a VersionVector, got {describe(value)}")
