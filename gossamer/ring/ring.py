"""The consistent-hashing ring: virtual nodes, weights, preference lists, hand-off ranges.

Karger et al. (1997): nodes and keys hash onto one circle, ``[0, 2**64)``, and
a key belongs to the first node point at or after it, going clockwise.  Each
node owns many points (*virtual nodes*) so that its share of the circle is
close to ``1/n``; a node of weight ``w`` owns ``round(vnodes * w)`` points.

Invariants the code relies on:

* **A ring is a pure function of its nodes, weights and ``vnodes``.**  The
  hashes (:mod:`gossamer.ring.hashing`) do not depend on the process, and
  points are ordered by ``(hash, node name)``, so two points that collide
  are both kept, in name order: the first owns the hash, the second owns
  an empty arc and takes over if the first node leaves.  Nothing is
  silently overwritten.
* **A node's points are a prefix of its stream.**  Adding a node only adds
  its points, so keys move only *to* it; removing one only removes its
  points, so keys move only *from* it; a weight change adds or removes the
  node's last points.  :func:`diff` relies on this to find what moved in
  time proportional to the points that changed.
* **A ring is immutable.**  It may be shared between threads; its points,
  lookup table and shares are computed on first use and published by one
  attribute assignment.  :meth:`Ring.release` drops the points and the table
  again (the node's tracker does so for superseded rings, so queued events
  do not pin them); the next use rebuilds them, with the same result.

Costs, for ``P`` points in all (``P = vnodes * n`` for ``n`` nodes of weight 1):

* Building from scratch sorts the points: ``O(P log P)``.  Deriving a ring
  from a built one (:meth:`Ring.with_members`) costs ``O(P)`` copying plus
  ``O(k log P)`` for ``k`` changed points.  Building is lazy: constructing a
  ``Ring`` validates its arguments and does no more until a lookup needs it.
* :meth:`Ring.owner` is ``O(1)`` expected: one hash and a read from a table of
  ``4P`` to ``8P`` slots built on the first lookup (``O(P)``).  A slot
  whose span of the circle holds a point is resolved by a binary search over
  the few points in it.
* :meth:`Ring.owners` is ``O(log P + r * n)`` where ``r`` is the number of
  points walked to meet ``n`` distinct nodes (about ``n`` when ``n`` is
  small).
* :func:`diff` is ``O(k log P)`` for ``k`` changed points, once both rings are
  built (it builds either that is not).
* Memory is about 17 bytes a point, and about 77 more per point once the
  lookup table exists (100 nodes of 2,048 points: 3.5 MB, then 19 MB).
"""

from __future__ import annotations

__all__ = [
    "DEFAULT_VNODES",
    "MAX_POINTS_PER_NODE",
    "MAX_VNODES",
    "EmptyRing",
    "Move",
    "Ring",
    "diff",
]

import math
from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from hashlib import blake2b
from typing import TYPE_CHECKING, Final, Generic, TypeAlias, TypeVar

from gossamer.errors import ConfigError, InvalidMessage, LocalError
from gossamer.ring.hashing import KEY_SPACE, key_bytes, key_hash, point_hashes

if TYPE_CHECKING:
    from gossamer.ring.bounded import BoundedPlacement

N = TypeVar("N", bound=str)

DEFAULT_VNODES: Final = 2048
"""Points per node of weight 1.  The heaviest of 100 nodes then owns about 6%
more than the mean share (``1 + 2.5/sqrt(vnodes)`` is the rule of thumb);
``benchmarks/ring.py`` measures it.  Fewer points build faster and take less
memory; the imbalance grows as ``1/sqrt(vnodes)`` and does not depend on the
number of nodes."""

MAX_VNODES: Final = 1 << 16
"""The largest ``vnodes`` a ring accepts."""

MAX_POINTS_PER_NODE: Final = 1 << 20
"""The most points one node may own (``round(vnodes * weight)``)."""

_MASK32: Final = (1 << 32) - 1
_from_bytes: Final = int.from_bytes


class EmptyRing(LocalError, LookupError):
    """A lookup on a ring that has no nodes."""


@dataclass(frozen=True, slots=True)
class Move(Generic[N]):
    """The keys whose hash is in ``[start, end)`` moved from ``source`` to ``target``.

    ``source`` is None when the old ring was empty (nothing to hand off) and
    ``target`` is None when the new ring is empty.  Ranges never wrap: an arc
    across zero is reported as two moves.
    """

    start: int
    """First hash of the range."""
    end: int
    """One past the last hash of the range (at most ``2**64``)."""
    source: N | None
    target: N | None

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.end <= KEY_SPACE:
            raise InvalidMessage(
                f"a move's range must be within [0, 2**64) and not empty, got "
                f"[{self.start}, {self.end})"
            )

    @property
    def fraction(self) -> float:
        """The share of the key space in this range."""
        return (self.end - self.start) / KEY_SPACE

    def __contains__(self, key: object) -> bool:
        """True if ``key`` (str or bytes) hashes into this range."""
        if not isinstance(key, str | bytes | bytearray | memoryview):
            return False
        return self.start <= key_hash(key) < self.end


class _Points:
    """A built ring: every point's hash, sorted, and its owner, aligned."""

    __slots__ = ("hashes", "owners")

    def __init__(self, hashes: array[int], owners: list[str]) -> None:
        self.hashes = hashes
        self.owners = owners


_Table: TypeAlias = tuple[list[str | int], int, "array[int]", list[str], int, int]
"""The lookup table: ``(slots, shift, hashes, owners, span, count)``.  ``slots[h >>
shift]`` is the owner of every hash in that slot's span of the circle or, when
the span holds points, the index of the first of them."""


class Ring(Generic[N]):
    """A consistent-hashing ring over ``nodes``.

    ``weights`` maps some of the nodes to a positive weight (1 for the rest);
    a node owns ``max(1, round(vnodes * weight))`` points.  Keys are ``str``
    or bytes.  Every node with the same nodes, weights and ``vnodes`` computes
    the same ring, in any process.
    """

    __slots__ = ("_base", "_counts", "_points", "_share", "_table", "_vnodes", "_weights")

    def __init__(
        self,
        nodes: Iterable[N] = (),
        *,
        weights: Mapping[N, float] | None = None,
        vnodes: int = DEFAULT_VNODES,
    ) -> None:
        if isinstance(vnodes, bool) or not isinstance(vnodes, int) or not 1 <= vnodes <= MAX_VNODES:
            raise ConfigError(f"vnodes must be an integer in [1, {MAX_VNODES}], got {vnodes!r}")
        if isinstance(nodes, str | bytes):
            raise InvalidMessage("nodes must be an iterable of names, not a single string")
        if not isinstance(nodes, Iterable):
            raise InvalidMessage(f"nodes must be an iterable of names, got {nodes!r:.80}")
        if weights is not None and not isinstance(weights, Mapping):
            raise InvalidMessage(
                f"weights must be a mapping of name to weight, got {weights!r:.80}"
            )
        try:
            distinct = set(nodes)
        except TypeError:
            raise InvalidMessage("ring nodes must be str names (one was unhashable)") from None
        # Checked before sorting, which would fail first on a mix of types.
        for name in distinct:
            _check_name(name)
        names = sorted(distinct)
        chosen: dict[N, float] = {}
        if weights is not None:
            for name, weight in weights.items():
                if name not in distinct:
                    raise InvalidMessage(
                        f"weight given for {name!r}, which is not a node of the ring"
                    )
                if (
                    isinstance(weight, bool)
                    or not isinstance(weight, int | float)
                    or not 0 < weight <= MAX_POINTS_PER_NODE
                    or not math.isfinite(weight)
                ):
                    raise InvalidMessage(
                        f"the weight of {name!r} must be a finite number > 0, got {weight!r}"
                    )
                chosen[name] = float(weight)
        counts: dict[N, int] = {}
        for name in names:
            weight = chosen.get(name, 1.0)
            count = max(1, round(vnodes * weight))
            if count > MAX_POINTS_PER_NODE:
                raise InvalidMessage(
                    f"{name!r} would own {count} points (vnodes {vnodes} x weight {weight}), "
                    f"over the limit of {MAX_POINTS_PER_NODE}"
                )
            counts[name] = count
        self._vnodes = vnodes
        self._weights = {name: w for name, w in chosen.items() if w != 1.0}
        self._counts = counts
        self._base: Ring[N] | None = None
        self._points: _Points | None = None
        self._table: _Table | None = None
        self._share: dict[N, float] | None = None

    # ---------------------------------------------------------------- views

    @property
    def nodes(self) -> tuple[N, ...]:
        """The nodes, sorted by name."""
        return tuple(self._counts)

    @property
    def vnodes(self) -> int:
        return self._vnodes

    @property
    def weights(self) -> dict[N, float]:
        """The weight of every node."""
        return {name: self._weights.get(name, 1.0) for name in self._counts}

    def points(self) -> dict[N, int]:
        """How many points each node owns on the circle."""
        return dict(self._counts)

    def share(self) -> dict[N, float]:
        """The fraction of the key space each node owns (the values sum to 1)."""
        share = self._share
        if share is None:
            share = self._compute_share()
            self._share = share
        return dict(share)

    def __len__(self) -> int:
        return len(self._counts)

    def __contains__(self, name: object) -> bool:
        return name in self._counts

    def __iter__(self) -> Iterator[N]:
        return iter(self._counts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        # The counts decide placement; the weights also decide bounded caps.
        return (
            self._counts == other._counts
            and self._weights == other._weights
            and self._vnodes == other._vnodes
        )

    def __hash__(self) -> int:
        return hash(tuple(self._counts.items()))

    def __repr__(self) -> str:
        return f"Ring({len(self._counts)} nodes, {sum(self._counts.values())} points)"

    # ---------------------------------------------------------------- lookups

    def owner(self, key: str | bytes) -> N:
        """The node that owns ``key``.  Raises :class:`EmptyRing` on an empty ring."""
        # The hot path: one hash, one table read, rarely a search over a few
        # points.  Everything it needs is unpacked from one tuple.
        table = self._table
        if table is None:
            table = self._build_table()
        slots, shift, hashes, owners, span, count = table
        if key.__class__ is str:
            try:
                data = key.encode()
            except UnicodeEncodeError:
                data = key_bytes(key)  # raises InvalidKey
        else:
            data = key if key.__class__ is bytes else key_bytes(key)
        h = _from_bytes(blake2b(data, digest_size=8).digest(), "big")
        slot = slots[h >> shift]
        if slot.__class__ is int:
            i = bisect_left(hashes, h, slot, slot + span)
            return owners[i] if i < count else owners[0]  # type: ignore[return-value]
        return slot  # type: ignore[return-value]

    def owners(self, key: str | bytes, n: int) -> tuple[N, ...]:
        """Up to ``n`` distinct nodes for ``key``, in preference order.

        The first is :meth:`owner`; the others are the next distinct nodes
        clockwise, where replicas go.  Fewer than ``n`` when the ring has
        fewer nodes.
        """
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise InvalidMessage(f"n must be an integer >= 1, got {n!r}")
        h = key_hash(key)
        points = self._built()
        hashes, owners = points.hashes, points.owners
        count = len(hashes)
        want = min(n, len(self._counts))
        i = bisect_left(hashes, h)
        found: list[N] = []
        while len(found) < want:
            name: N = owners[i % count]  # type: ignore[assignment]
            if name not in found:
                found.append(name)
            i += 1
        return tuple(found)

    def owner_of_hash(self, h: int) -> N:
        """The node that owns position ``h`` of the circle (``0 <= h < 2**64``)."""
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < KEY_SPACE:
            raise InvalidMessage(f"a hash must be an integer in [0, 2**64), got {h!r}")
        return _owner_at(self._built(), h)  # type: ignore[return-value]

    # ---------------------------------------------------------------- derived rings

    def with_members(
        self, nodes: Iterable[N], *, weights: Mapping[N, float] | None = None
    ) -> Ring[N]:
        """The ring of ``nodes`` (and ``weights``) with this ring's ``vnodes``.

        Equal to ``Ring(nodes, weights=weights, vnodes=self.vnodes)``.  If
        this ring's points are built by the time the new one is first used,
        the new one copies them rather than sorting again; otherwise it is
        built from scratch.
        """
        ring: Ring[N] = Ring(nodes, weights=weights, vnodes=self._vnodes)
        # Keep at most one link: a chain of unbuilt rings would hold every
        # member list since the last build.
        ring._base = self if self._points is not None else self._base
        return ring

    def release(self, *, points: bool = True) -> None:
        """Drop the lookup table (and, with ``points``, the sorted points) to
        free memory; the next use rebuilds what it needs."""
        self._table = None
        if points:
            self._points = None

    def place_bounded(
        self, items: Iterable[str | bytes], *, epsilon: float = 0.25
    ) -> BoundedPlacement[N]:
        """Place a known set of items so no node takes more than its cap.

        See :func:`gossamer.ring.bounded.place_bounded`.
        """
        from gossamer.ring.bounded import place_bounded

        return place_bounded(self, items, epsilon=epsilon)

    # ---------------------------------------------------------------- building

    def _built(self) -> _Points:
        points = self._points
        if points is None:
            if not self._counts:
                raise EmptyRing("the ring has no nodes")
            base = self._base
            points = None
            if base is not None and base._points is not None:
                points = _derive(base._points, base._counts, self._counts)
            if points is None:
                points = _assemble(self._counts)
            self._points = points
            self._base = None
        return points

    def _build_table(self) -> _Table:
        points = self._built()
        hashes, owners = points.hashes, points.owners
        count = len(hashes)
        # Between 4P and 8P slots: at most one slot in four holds a point,
        # so most lookups end at the slot.
        bits = max(4, (4 * count - 1).bit_length())
        shift = 64 - bits
        size = 1 << bits
        slots: list[str | int] = []
        previous = -1
        start = 0
        span = 1
        for i, h in enumerate(hashes):
            slot = h >> shift
            if slot != previous:
                if previous >= 0:
                    span = max(span, i - start)
                gap = slot - previous - 1
                if gap:
                    slots.extend([owners[i]] * gap)
                slots.append(i)
                previous = slot
                start = i
        span = max(span, count - start) + 1
        if previous < size - 1:
            slots.extend([owners[0]] * (size - 1 - previous))
        # A slot holding points lists the first one's index.  The answer for a
        # hash in that slot is at most ``span - 1`` places on: the next slot's
        # first point, or the end, which wraps to point 0.  Padding the hashes
        # with the largest value lets the search run ``span`` places without a
        # bounds check; an index past the real points wraps.
        padded = array("Q", hashes)
        padded.extend([KEY_SPACE - 1] * span)
        table: _Table = (slots, shift, padded, owners, span, count)
        self._table = table
        return table

    def _compute_share(self) -> dict[N, float]:
        share = dict.fromkeys(self._counts, 0)
        if not self._counts:
            return {}
        points = self._built()
        hashes, owners = points.hashes, points.owners
        previous = hashes[-1] - KEY_SPACE
        for h, name in zip(hashes, owners, strict=True):
            share[name] += h - previous  # type: ignore[index]
            previous = h
        return {name: arc / KEY_SPACE for name, arc in share.items()}


# ---------------------------------------------------------------- internals


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidMessage(f"a ring node must be a non-empty str, got {name!r}")
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessage(f"node name {name!r} is not encodable as UTF-8") from None


def _assemble(counts: Mapping[N, int]) -> _Points:
    """Build from scratch: every point, sorted by (hash, node name)."""
    names = list(counts)  # sorted by name: the rank below breaks hash ties by name
    # Sorted in 256 buckets by the top byte, not as one list: one sort is one
    # C call that holds the GIL throughout (a third of a second at a million
    # points), which would stall the engine thread while the application
    # builds its ring.  Between buckets the interpreter can switch threads.
    buckets: list[list[int]] = [[] for _ in range(256)]
    for rank, name in enumerate(names):
        for h in point_hashes(name, 0, counts[name]):
            buckets[h >> 56].append(h << 32 | rank)
    keyed: list[int] = []
    for bucket in buckets:
        bucket.sort()
        keyed.extend(bucket)
    hashes = array("Q", [k >> 32 for k in keyed])
    owners: list[str] = [names[k & _MASK32] for k in keyed]
    return _Points(hashes, owners)


def _changed_points(
    old: Mapping[N, int], new: Mapping[N, int]
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """The points only the old ring has and those only the new one has, as (hash, name)."""
    removed: list[tuple[int, str]] = []
    added: list[tuple[int, str]] = []
    for name in sorted(old.keys() | new.keys()):
        before, after = old.get(name, 0), new.get(name, 0)
        if before > after:
            removed.extend((h, name) for h in point_hashes(name, after, before))
        elif after > before:
            added.extend((h, name) for h in point_hashes(name, before, after))
    return removed, added


def _derive(base: _Points, old: Mapping[N, int], new: Mapping[N, int]) -> _Points | None:
    """The new ring's points from the old ring's, or None when a rebuild is cheaper."""
    removed, added = _changed_points(old, new)
    hashes, owners = base.hashes, base.owners
    count = len(hashes)
    if len(removed) + len(added) > count // 4 or len(removed) >= count:
        return None
    # Removals: the base index of each removed point (a tie is resolved by
    # name, and a node's own repeated hash takes the next index).
    skip: set[int] = set()
    for h, name in removed:
        i = bisect_left(hashes, h)
        while owners[i] != name or i in skip:
            i += 1
        skip.add(i)
    # Insertions: before the first base point that sorts after (hash, name).
    ops: list[tuple[int, int, int, str]] = [(i, 1, 0, "") for i in skip]
    for h, name in sorted(added):
        i = bisect_left(hashes, h)
        while i < count and hashes[i] == h and owners[i] < name:
            i += 1
        ops.append((i, 0, h, name))
    ops.sort()
    out_hashes = array("Q")
    out_owners: list[str] = []
    cursor = 0
    for i, kind, h, name in ops:
        if i > cursor:
            out_hashes.extend(hashes[cursor:i])
            out_owners.extend(owners[cursor:i])
            cursor = i
        if kind == 0:
            out_hashes.append(h)
            out_owners.append(name)
        else:
            cursor = i + 1
    out_hashes.extend(hashes[cursor:])
    out_owners.extend(owners[cursor:])
    return _Points(out_hashes, out_owners)


def _owner_at(points: _Points, h: int) -> str:
    i = bisect_left(points.hashes, h)
    owners = points.owners
    return owners[i] if i < len(owners) else owners[0]


def _before(hashes: array[int], h: int) -> int:
    """The last point strictly before ``h``, going back across zero (then negative)."""
    i = bisect_left(hashes, h)
    return hashes[i - 1] if i > 0 else hashes[-1] - KEY_SPACE


def diff(old: Ring[N], new: Ring[N]) -> tuple[Move[N], ...]:
    """The ranges of the key space whose owner differs between ``old`` and ``new``.

    Sorted by ``start``; adjacent ranges with the same source and target are
    merged.  For a hand-off, the source sends each target the keys it holds
    in the target's ranges.  Cost: ``O(k log P)`` for ``k`` changed points.
    """
    removed, added = _changed_points(old._counts, new._counts)
    changed = sorted({h for h, _ in removed} | {h for h, _ in added})
    if not changed:
        return ()
    before = old._built() if old._counts else None
    after = new._built() if new._counts else None
    pieces: list[tuple[int, int, str | None, str | None]] = []
    for h in changed:
        source = _owner_at(before, h) if before is not None else None
        target = _owner_at(after, h) if after is not None else None
        if source == target:
            continue
        # Every point between the previous point of either ring and ``h`` is
        # unchanged, so the whole arc up to ``h`` changed owner with it.
        lows = [_before(p.hashes, h) for p in (before, after) if p is not None]
        low = max(lows) + 1
        end = h + 1
        if low < 0:
            pieces.append((low + KEY_SPACE, KEY_SPACE, source, target))
            if end > 0:
                pieces.append((0, end, source, target))
        else:
            pieces.append((low, end, source, target))
    pieces.sort(key=lambda piece: piece[0])
    moves: list[Move[N]] = []
    for start, end, source, target in pieces:
        if moves:
            last = moves[-1]
            if last.end == start and last.source == source and last.target == target:
                moves[-1] = Move(last.start, end, source, target)
                continue
        moves.append(Move(start, end, source, target))  # type: ignore[arg-type]
    return tuple(moves)
